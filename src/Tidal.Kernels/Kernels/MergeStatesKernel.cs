using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Merges split-K attention states. One warp per (row, head, 8-channel chunk); lane t is split slot t (splits t,
/// t + 32, …, in order), so the splits' loads spread over the warp instead of forming one long dependent chain; the 32
/// slots then fold by shuffle-xor halving. Rows of one split were written whole by the attention kernel and are
/// skipped. Reference: Tidal.Core.Reference.Attention.MergeStates, bit for bit.
/// </summary>
public sealed class MergeStatesKernel
{
    /// <summary>Arguments of one launch: the layout <see cref="DecodeAttentionKernel"/> writes.</summary>
    public struct Args
    {
        /// <summary>Partial outputs [rows, SplitsPerRow, heads, d].</summary>
        public ArrayView<float> Partials;
        /// <summary>Partial log-sum-exps [rows, SplitsPerRow, heads].</summary>
        public ArrayView<float> Lses;
        /// <summary>Merged outputs [rows, heads, d].</summary>
        public ArrayView<float> Output;
        /// <summary>Merged log-sum-exps [rows, heads].</summary>
        public ArrayView<float> Lse;
        /// <summary>Tokens of row 0; row r has Count + r.</summary>
        public int Count;
        /// <summary>State slots per row.</summary>
        public int SplitsPerRow;
        /// <summary>Query heads.</summary>
        public int Heads;
        /// <summary>Head dimension, a multiple of 8.</summary>
        public int HeadDim;
    }

    private readonly Action<KernelConfig, Args> _kernel;

    /// <summary>Compiles the kernel.</summary>
    public MergeStatesKernel(Accelerator accelerator) => _kernel = accelerator.LoadStreamKernel<Args>(Run);

    /// <summary>Merges every row with more than one split; d a multiple of 8.</summary>
    public void Launch(Args args, int rows)
    {
        if (args.HeadDim % 8 != 0) throw new ArgumentException($"headDim must be a multiple of 8, got {args.HeadDim}.", nameof(args));
        _kernel(new KernelConfig(new Index2D(args.Heads, rows), new Index2D(32 * (args.HeadDim / 8), 1)), args);
    }

    private static void Run(Args a)
    {
        int head = Grid.IdxX, row = Grid.IdxY, chunk = Group.IdxX / 32, lane = Group.IdxX % 32, heads = a.Heads, d = a.HeadDim;
        int splits = DecodeAttentionKernel.RowSplits(a.Count + row);
        if (splits <= 1) return;
        long first = (long)row * a.SplitsPerRow * heads + head; // state s of this (row, head) is at first + s · heads
        float m = float.NegativeInfinity;
        for (int s = lane; s < splits; s += 32) m = MathF.Max(m, a.Lses[first + (long)s * heads]);
        for (int x = 16; x >= 1; x /= 2) m = MathF.Max(m, Warp.ShuffleXor(m, x));
        long at = ((long)row * heads + head) * d + chunk * 8;
        if (m == float.NegativeInfinity)
        {
            if (lane < 8) a.Output[at + lane] = 0f;
            if (chunk == 0 && lane == 0) a.Lse[(long)row * heads + head] = m;
            return;
        }
        float total = 0f;
        var o = new Vec8();
        ArrayView<F4> partials = a.Partials.Cast<F4>();
        for (int s = lane; s < splits; s += 32)
        {
            long state = first + (long)s * heads;
            float w = KernelMath.Exp(KernelMath.Sub(a.Lses[state], m));
            total = KernelMath.Add(total, w);
            long p = (state * d + chunk * 8) / 4;
            F4 x = partials[p], y = partials[p + 1];
            o.F0 = KernelMath.Fma(w, x.X, o.F0); o.F1 = KernelMath.Fma(w, x.Y, o.F1);
            o.F2 = KernelMath.Fma(w, x.Z, o.F2); o.F3 = KernelMath.Fma(w, x.W, o.F3);
            o.F4 = KernelMath.Fma(w, y.X, o.F4); o.F5 = KernelMath.Fma(w, y.Y, o.F5);
            o.F6 = KernelMath.Fma(w, y.Z, o.F6); o.F7 = KernelMath.Fma(w, y.W, o.F7);
        }
        total = KernelMath.FoldLanes(total);
        float r0 = KernelMath.FoldLanes(o.F0), r1 = KernelMath.FoldLanes(o.F1), r2 = KernelMath.FoldLanes(o.F2), r3 = KernelMath.FoldLanes(o.F3);
        float r4 = KernelMath.FoldLanes(o.F4), r5 = KernelMath.FoldLanes(o.F5), r6 = KernelMath.FoldLanes(o.F6), r7 = KernelMath.FoldLanes(o.F7);
        if (lane == 0)
        {
            a.Output[at] = r0 / total; a.Output[at + 1] = r1 / total; a.Output[at + 2] = r2 / total; a.Output[at + 3] = r3 / total;
            a.Output[at + 4] = r4 / total; a.Output[at + 5] = r5 / total; a.Output[at + 6] = r6 / total; a.Output[at + 7] = r7 / total;
            if (chunk == 0) a.Lse[(long)row * heads + head] = KernelMath.Add(m, KernelMath.Log(total));
        }
    }
}
