using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// RMSNorm, one warp per row: Σx² in the feature-axis order (lane l takes chunks l, l + 32, …; 8 slots; fold), then
/// y = (x · r) · w. Reference: Tidal.Core.Reference.RmsNorm.Apply.
/// </summary>
public sealed class RmsNormKernel
{
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<byte>, int, ArrayView<float>, int, float> _kernel;

    /// <summary>Compiles the kernel.</summary>
    public RmsNormKernel(Accelerator accelerator) =>
        _kernel = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<byte>, int, ArrayView<float>, int, float>(Run);

    /// <summary>Normalises <paramref name="rows"/> rows of x [rows, n] into y with weight [n] in <paramref name="format"/>.</summary>
    public void Launch(ArrayView<float> x, ArrayView<byte> weight, int format, ArrayView<float> y, int rows, int n, float eps) =>
        _kernel(new KernelConfig(rows, 32), x, weight, format, y, n, eps);

    private static void Run(ArrayView<float> x, ArrayView<byte> weight, int format, ArrayView<float> y, int n, float eps)
    {
        int row = Grid.IdxX, lane = Group.IdxX;
        long offset = (long)row * n;
        int chunks = (n + 7) / 8;
        var acc = new Vec8();
        for (int c = lane; c < chunks; c += 32)
        {
            Vec8 v = Loads.Activations(x, offset, c, n);
            acc.Fma(v, v);
        }
        float ss = KernelMath.FoldLanes(KernelMath.FoldSlots(acc));
        float r = 1f / MathF.Sqrt(KernelMath.Add(ss / n, eps));
        for (int i = lane; i < n; i += 32)
            y[offset + i] = KernelMath.Mul(KernelMath.Mul(x[offset + i], r), Loads.Element(weight, i, format));
    }
}
