using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// RMSNorm, one group of 256 threads per row: warp 0 takes Σx² in the feature-axis order (<see cref="MatVecKernel.WarpDot"/>,
/// four loads in flight per lane), then every thread writes y = (x · r) · w for its 8-element chunks, so a row costs a
/// few memory round trips instead of one per 32 elements. Reference: Tidal.Core.Reference.RmsNorm.Apply.
/// </summary>
public sealed class RmsNormKernel
{
    private const int Threads = 256;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<byte>, int, ArrayView<float>, int, float, int> _kernel;

    /// <summary>Compiles the kernel.</summary>
    public RmsNormKernel(Accelerator accelerator) =>
        _kernel = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<byte>, int, ArrayView<float>, int, float, int>(Run);

    /// <summary>Normalises <paramref name="rows"/> rows of x [rows, n] into y with weight [n] in <paramref name="format"/>.</summary>
    public void Launch(ArrayView<float> x, ArrayView<byte> weight, int format, ArrayView<float> y, int rows, int n, float eps)
    {
        int aligned = Loads.ChunksAligned(n, weight, x) && Loads.IsAligned(y) ? 1 : 0;
        _kernel(new KernelConfig(rows, Threads), x, weight, format, y, n, eps, aligned);
    }

    private static void Run(ArrayView<float> x, ArrayView<byte> weight, int format, ArrayView<float> y, int n, float eps, int aligned)
    {
        ArrayView<float> inverse = SharedMemory.Allocate<float>(1);
        int row = Grid.IdxX, tid = Group.IdxX;
        long offset = (long)row * n;
        if (Warp.WarpIdx == 0)
        {
            float ss = MatVecKernel.WarpDot(x.Cast<byte>(), Format.F32, offset, x, offset, n, aligned);
            if (Warp.LaneIdx == 0) inverse[0] = 1f / MathF.Sqrt(KernelMath.Add(ss / n, eps));
        }
        Group.Barrier();
        float r = inverse[0];
        if (aligned != 0)
        {
            ArrayView<byte> xs = x.Cast<byte>();
            ArrayView<F4> ys = y.Cast<F4>();
            for (int c = tid; c < n / 8; c += Threads)
            {
                Vec8 v = Loads.Chunk(xs, offset / 8 + c, Format.F32), w = Loads.Chunk(weight, c, format);
                var lo = new F4 { X = Scale(v.F0, r, w.F0), Y = Scale(v.F1, r, w.F1), Z = Scale(v.F2, r, w.F2), W = Scale(v.F3, r, w.F3) };
                var hi = new F4 { X = Scale(v.F4, r, w.F4), Y = Scale(v.F5, r, w.F5), Z = Scale(v.F6, r, w.F6), W = Scale(v.F7, r, w.F7) };
                ys[offset / 4 + 2 * c] = lo;
                ys[offset / 4 + 2 * c + 1] = hi;
            }
        }
        else
        {
            for (int i = tid; i < n; i += Threads) y[offset + i] = Scale(x[offset + i], r, Loads.Element(weight, i, format));
        }
    }

    /// <summary>(x · r) · w, each product rounded, as the reference multiplies.</summary>
    private static float Scale(float x, float r, float w) => KernelMath.Mul(KernelMath.Mul(x, r), w);
}
