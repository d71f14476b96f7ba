using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Merges split-K attention states. One warp per (head, 8-channel chunk); lane t is split slot t (splits t, t + 32, …,
/// in order), so the splits' loads spread over the warp instead of forming one long dependent chain; the 32 slots then
/// fold by shuffle-xor halving. Reference: Tidal.Core.Reference.Attention.MergeStates, bit for bit.
/// </summary>
public sealed class MergeStatesKernel
{
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int> _kernel;

    /// <summary>Compiles the kernel.</summary>
    public MergeStatesKernel(Accelerator accelerator) =>
        _kernel = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(Run);

    /// <summary>outputs [splits, heads, d], lses [splits, heads] → output [heads, d], lse [heads]; d a multiple of 8.</summary>
    public void Launch(ArrayView<float> outputs, ArrayView<float> lses, ArrayView<float> output, ArrayView<float> lse, int splits, int heads, int headDim)
    {
        if (headDim % 8 != 0) throw new ArgumentException($"headDim must be a multiple of 8, got {headDim}.", nameof(headDim));
        _kernel(new KernelConfig(heads, 32 * (headDim / 8)), outputs, lses, output, lse, splits, heads, headDim);
    }

    private static void Run(ArrayView<float> outputs, ArrayView<float> lses, ArrayView<float> output, ArrayView<float> lse, int splits, int heads, int d)
    {
        int head = Grid.IdxX, chunk = Group.IdxX / 32, lane = Group.IdxX % 32;
        float m = float.NegativeInfinity;
        for (int s = lane; s < splits; s += 32) m = MathF.Max(m, lses[s * heads + head]);
        for (int x = 16; x >= 1; x /= 2) m = MathF.Max(m, Warp.ShuffleXor(m, x));
        long at = (long)head * d + chunk * 8;
        if (m == float.NegativeInfinity)
        {
            if (lane < 8) output[at + lane] = 0f;
            if (chunk == 0 && lane == 0) lse[head] = m;
            return;
        }
        float total = 0f;
        var o = new Vec8();
        ArrayView<F4> partials = outputs.Cast<F4>();
        for (int s = lane; s < splits; s += 32)
        {
            float w = KernelMath.Exp(KernelMath.Sub(lses[s * heads + head], m));
            total = KernelMath.Add(total, w);
            long p = (((long)s * heads + head) * d + chunk * 8) / 4;
            F4 a = partials[p], b = partials[p + 1];
            o.F0 = KernelMath.Fma(w, a.X, o.F0); o.F1 = KernelMath.Fma(w, a.Y, o.F1);
            o.F2 = KernelMath.Fma(w, a.Z, o.F2); o.F3 = KernelMath.Fma(w, a.W, o.F3);
            o.F4 = KernelMath.Fma(w, b.X, o.F4); o.F5 = KernelMath.Fma(w, b.Y, o.F5);
            o.F6 = KernelMath.Fma(w, b.Z, o.F6); o.F7 = KernelMath.Fma(w, b.W, o.F7);
        }
        total = KernelMath.FoldLanes(total, 32);
        float r0 = KernelMath.FoldLanes(o.F0, 32), r1 = KernelMath.FoldLanes(o.F1, 32), r2 = KernelMath.FoldLanes(o.F2, 32), r3 = KernelMath.FoldLanes(o.F3, 32);
        float r4 = KernelMath.FoldLanes(o.F4, 32), r5 = KernelMath.FoldLanes(o.F5, 32), r6 = KernelMath.FoldLanes(o.F6, 32), r7 = KernelMath.FoldLanes(o.F7, 32);
        if (lane == 0)
        {
            output[at] = r0 / total; output[at + 1] = r1 / total; output[at + 2] = r2 / total; output[at + 3] = r3 / total;
            output[at + 4] = r4 / total; output[at + 5] = r5 / total; output[at + 6] = r6 / total; output[at + 7] = r7 / total;
            if (chunk == 0) lse[head] = KernelMath.Add(m, KernelMath.Log(total));
        }
    }
}
