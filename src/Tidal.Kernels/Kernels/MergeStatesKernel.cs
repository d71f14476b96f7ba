using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Merges split-K attention states, one thread per (head, channel), splits in order.
/// Reference: Tidal.Core.Reference.Attention.MergeStates, bit for bit.
/// </summary>
public sealed class MergeStatesKernel
{
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int> _kernel;

    /// <summary>Compiles the kernel.</summary>
    public MergeStatesKernel(Accelerator accelerator) =>
        _kernel = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(Run);

    /// <summary>outputs [splits, heads, d], lses [splits, heads] → output [heads, d], lse [heads].</summary>
    public void Launch(ArrayView<float> outputs, ArrayView<float> lses, ArrayView<float> output, ArrayView<float> lse, int splits, int heads, int headDim)
    {
        int n = heads * headDim;
        _kernel(new KernelConfig((n + 127) / 128, 128), outputs, lses, output, lse, splits, heads, headDim);
    }

    private static void Run(ArrayView<float> outputs, ArrayView<float> lses, ArrayView<float> output, ArrayView<float> lse, int splits, int heads, int d)
    {
        int t = Grid.GlobalIndex.X;
        if (t >= heads * d) return;
        int head = t / d, i = t % d;
        float m = float.NegativeInfinity;
        for (int s = 0; s < splits; s++) m = MathF.Max(m, lses[s * heads + head]);
        if (m == float.NegativeInfinity)
        {
            output[t] = 0f;
            if (i == 0) lse[head] = m;
            return;
        }
        float total = 0f, o = 0f;
        for (int s = 0; s < splits; s++)
        {
            float w = KernelMath.Exp(KernelMath.Sub(lses[s * heads + head], m));
            total = KernelMath.Add(total, w);
            o = KernelMath.Fma(w, outputs[((long)s * heads + head) * d + i], o);
        }
        output[t] = o / total;
        if (i == 0) lse[head] = KernelMath.Add(m, KernelMath.Log(total));
    }
}
