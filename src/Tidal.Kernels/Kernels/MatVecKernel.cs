using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// GEMV / small-batch matmul, one warp per (row, batch item): each lane streams 16-byte chunks l, l + 32, … of the
/// weight row (8 F16/BF16 values, or 2×16 bytes of F32) into 8 fma accumulators, folds them, then the warp folds
/// by shuffle-xor. This is the feature-axis order of Tidal.Core.Numerics.Reduction, so results equal
/// Tidal.Core.Reference.Linear.MatMul bit for bit.
/// </summary>
public sealed class MatVecKernel
{
    private const int WarpsPerGroup = 4;
    private readonly Action<KernelConfig, ArrayView<byte>, int, ArrayView<float>, ArrayView<float>, int, int, int> _kernel;

    /// <summary>Compiles the kernel.</summary>
    public MatVecKernel(Accelerator accelerator) =>
        _kernel = accelerator.LoadStreamKernel<ArrayView<byte>, int, ArrayView<float>, ArrayView<float>, int, int, int>(Run);

    /// <summary>
    /// y [batch, rows] = x [batch, cols] · wᵀ, w [rows, cols] in <paramref name="format"/>. Rows whose width is a
    /// multiple of 8 (with 16-byte aligned views) use vector loads; other widths load element by element.
    /// </summary>
    public void Launch(ArrayView<byte> w, int format, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int batch)
    {
        int aligned = cols % 8 == 0 && w.LoadEffectiveAddressAsPtr() % 16 == 0 && x.LoadEffectiveAddressAsPtr() % 16 == 0 ? 1 : 0;
        _kernel(new KernelConfig(new Index2D((rows + WarpsPerGroup - 1) / WarpsPerGroup, batch), new Index2D(32 * WarpsPerGroup, 1)), w, format, x, y, rows, cols, aligned);
    }

    private static void Run(ArrayView<byte> w, int format, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int aligned)
    {
        int row = Grid.IdxX * WarpsPerGroup + Warp.WarpIdx, b = Grid.IdxY, lane = Warp.LaneIdx;
        int chunks = (cols + 7) / 8;
        long rowStart = (long)(row < rows ? row : 0) * cols;
        long xOffset = (long)b * cols;
        var acc = new Vec8();
        if (aligned != 0)
        {
            // Two 16-byte weight loads in flight per lane; accumulation stays in chunk order (c, then c + 32).
            int c = lane;
            for (; c + 32 < chunks; c += 64)
            {
                Vec8 w0 = Loads.Chunk(w, rowStart / 8 + c, format), w1 = Loads.Chunk(w, rowStart / 8 + c + 32, format);
                acc.Fma(w0, Loads.Chunk(x.Cast<byte>(), (xOffset / 8) + c, Format.F32));
                acc.Fma(w1, Loads.Chunk(x.Cast<byte>(), (xOffset / 8) + c + 32, Format.F32));
            }
            if (c < chunks) acc.Fma(Loads.Chunk(w, rowStart / 8 + c, format), Loads.Chunk(x.Cast<byte>(), (xOffset / 8) + c, Format.F32));
        }
        else
        {
            for (int c = lane; c < chunks; c += 32)
                acc.Fma(Loads.ChunkPadded(w, rowStart, c, cols, format), Loads.Activations(x, xOffset, c, cols));
        }
        float sum = KernelMath.FoldLanes(KernelMath.FoldSlots(acc), 32);
        if (lane == 0 && row < rows) y[(long)b * rows + row] = sum;
    }
}
