using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Rotary position embedding in place, one thread per rotated pair, from the host-computed cos/sin tables.
/// Reference: Tidal.Core.Reference.Rope.Rotate (products rounded separately: mul.rn, then sub.rn/add.rn).
/// </summary>
public sealed class RopeKernel
{
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int> _kernel;

    /// <summary>Compiles the kernel.</summary>
    public RopeKernel(Accelerator accelerator) =>
        _kernel = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int>(Run);

    /// <summary>Rotates x [rows, heads, headDim], row r for <paramref name="position"/> + r; cos/sin are [maxPositions, headDim/2]; interleaved = 1 for GGUF pairs.</summary>
    public void Launch(ArrayView<float> x, ArrayView<float> cos, ArrayView<float> sin, int rows, int heads, int headDim, int position, int interleaved)
    {
        int pairs = rows * heads * headDim / 2;
        _kernel(new KernelConfig((pairs + 127) / 128, 128), x, cos, sin, pairs, heads * headDim / 2, headDim, position, interleaved);
    }

    private static void Run(ArrayView<float> x, ArrayView<float> cos, ArrayView<float> sin, int pairs, int pairsPerRow, int headDim, int position, int interleaved)
    {
        int p = Grid.GlobalIndex.X;
        if (p >= pairs) return;
        int half = headDim / 2, row = p / pairsPerRow, head = p / half, i = p % half; // heads counted across rows: x is [rows · heads, headDim]
        int ia = head * headDim + (interleaved != 0 ? 2 * i : i);
        int ib = head * headDim + (interleaved != 0 ? 2 * i + 1 : i + half);
        int at = (position + row) * half + i;
        float c = cos[at], s = sin[at];
        float a = x[ia], b = x[ib];
        x[ia] = KernelMath.Sub(KernelMath.Mul(a, c), KernelMath.Mul(b, s));
        x[ib] = KernelMath.Add(KernelMath.Mul(b, c), KernelMath.Mul(a, s));
    }
}
