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
        for (int s = lane; s < splits; s += 128)
        {
            float l0 = Lse(a, first, s, splits), l1 = Lse(a, first, s + 32, splits), l2 = Lse(a, first, s + 64, splits), l3 = Lse(a, first, s + 96, splits);
            m = MathF.Max(m, MathF.Max(MathF.Max(l0, l1), MathF.Max(l2, l3)));
        }
        for (int x = 16; x >= 1; x /= 2) m = MathF.Max(m, Warp.ShuffleXor(m, x));
        long at = ((long)row * heads + head) * d + chunk * 8;
        if (m == float.NegativeInfinity)
        {
            if (lane < 8) a.Output[at + lane] = 0f;
            if (chunk == 0 && lane == 0) a.Lse[(long)row * heads + head] = m;
            return;
        }
        // Slot `lane` adds its states s, s + 32, … in order; four states' loads are issued together.
        float total = 0f;
        var o = new Vec8();
        ArrayView<F4> partials = a.Partials.Cast<F4>();
        for (int s = lane; s < splits; s += 128)
        {
            float l0 = Lse(a, first, s, splits), l1 = Lse(a, first, s + 32, splits), l2 = Lse(a, first, s + 64, splits), l3 = Lse(a, first, s + 96, splits);
            Vec8 p0 = Partial(a, partials, first, s, splits, chunk), p1 = Partial(a, partials, first, s + 32, splits, chunk);
            Vec8 p2 = Partial(a, partials, first, s + 64, splits, chunk), p3 = Partial(a, partials, first, s + 96, splits, chunk);
            AddState(l0, p0, m, ref total, ref o);
            if (s + 32 < splits) AddState(l1, p1, m, ref total, ref o);
            if (s + 64 < splits) AddState(l2, p2, m, ref total, ref o);
            if (s + 96 < splits) AddState(l3, p3, m, ref total, ref o);
        }
        total = KernelMath.FoldLanes(total);
        float channel = KernelMath.FoldChannels(o, lane);
        if ((lane & 3) == 0) a.Output[at + KernelMath.FoldedChannel(lane)] = channel / total;
        if (chunk == 0 && lane == 0) a.Lse[(long)row * heads + head] = KernelMath.Add(m, KernelMath.Log(total));
    }

    private static float Lse(in Args a, long first, int s, int splits) => s < splits ? a.Lses[first + (long)s * a.Heads] : float.NegativeInfinity;

    private static Vec8 Partial(in Args a, ArrayView<F4> partials, long first, int s, int splits, int chunk)
    {
        var v = new Vec8();
        if (s >= splits) return v;
        long p = ((first + (long)s * a.Heads) * a.HeadDim + chunk * 8) / 4;
        F4 x = partials[p], y = partials[p + 1];
        v.F0 = x.X; v.F1 = x.Y; v.F2 = x.Z; v.F3 = x.W; v.F4 = y.X; v.F5 = y.Y; v.F6 = y.Z; v.F7 = y.W;
        return v;
    }

    /// <summary>Adds state weight w = e^(lse − m) to the total and w · partial to the output slots, with fma.</summary>
    private static void AddState(float lse, in Vec8 p, float m, ref float total, ref Vec8 o)
    {
        float w = KernelMath.Exp(KernelMath.Sub(lse, m));
        total = KernelMath.Add(total, w);
        o.Fma(w, p);
    }
}
