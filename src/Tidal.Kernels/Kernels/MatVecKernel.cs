using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// GEMV / small-batch matmul, one warp per (row, batch item): each lane streams 16-byte chunks l, l + 32, … of the
/// weight row (8 F16/BF16 values, or 2×16 bytes of F32), four chunks in flight, into 8 fma accumulators, folds them,
/// then the warp folds by shuffle-xor. This is the feature-axis order of Tidal.Core.Numerics.Reduction, so results
/// equal Tidal.Core.Reference.Linear.MatMul bit for bit. The batch is the grid's fast axis, so the items of a batch
/// (a prefill chunk) read a weight row at about the same time and share it through L2.
/// </summary>
/// <remarks>One row per warp keeps enough warps in flight for short matrices (4096 rows: 31 warps per H100 SM); four
/// rows per warp (one activation load serving four rows) measured 1.3–1.9× slower on an H100 for that reason.</remarks>
public sealed class MatVecKernel
{
    private const int WarpsPerGroup = 4;
    private readonly Action<KernelConfig, ArrayView<byte>, int, ArrayView<float>, ArrayView<float>, int, int, int> _kernel;

    /// <summary>Compiles the kernel, on CUDA with registers capped so that 8 groups share an SM: a 4096-row matrix
    /// (1024 groups) then runs in one wave on 132 SMs (uncapped, the four loads in flight took ~70 registers, 7 groups
    /// per SM, and a second, nearly empty wave made the 4096×14336 GEMV 1.3× slower than with two loads in flight).</summary>
    public MatVecKernel(Accelerator accelerator) =>
        _kernel = accelerator.AcceleratorType == AcceleratorType.Cuda // the CPU accelerator rejects launch bounds
            ? accelerator.LoadStreamKernel<ArrayView<byte>, int, ArrayView<float>, ArrayView<float>, int, int, int>(Run, new KernelSpecialization(32 * WarpsPerGroup, 8))
            : accelerator.LoadStreamKernel<ArrayView<byte>, int, ArrayView<float>, ArrayView<float>, int, int, int>(Run);

    /// <summary>
    /// y [batch, rows] = x [batch, cols] · wᵀ, w [rows, cols] in <paramref name="format"/>. Rows whose width is a
    /// multiple of 8 (with 16-byte aligned views) use vector loads; other widths load element by element.
    /// </summary>
    public void Launch(ArrayView<byte> w, int format, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int batch)
    {
        int aligned = Loads.ChunksAligned(cols, w, x) ? 1 : 0;
        _kernel(new KernelConfig(new Index2D(batch, (rows + WarpsPerGroup - 1) / WarpsPerGroup), new Index2D(32 * WarpsPerGroup, 1)), w, format, x, y, rows, cols, aligned);
    }

    private static void Run(ArrayView<byte> w, int format, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int aligned)
    {
        int row = Grid.IdxY * WarpsPerGroup + Warp.WarpIdx, b = Grid.IdxX;
        float sum = WarpDot(w, format, (long)(row < rows ? row : 0) * cols, x, (long)b * cols, cols, aligned);
        if (Warp.LaneIdx == 0 && row < rows) y[(long)b * rows + row] = sum;
    }

    /// <summary>
    /// Σ w[wStart + i] · x[xStart + i] over i &lt; <paramref name="length"/> by one warp in the feature-axis order (every lane
    /// returns the sum). Aligned (16-byte aligned starts, length a multiple of 8): four 16-byte weight loads in flight
    /// per lane, accumulated in chunk order (c, c + 32, c + 64, c + 96); otherwise element loads.
    /// </summary>
    public static float WarpDot(ArrayView<byte> w, int format, long wStart, ArrayView<float> x, long xStart, int length, int aligned)
    {
        int lane = Warp.LaneIdx, chunks = (length + 7) / 8;
        var acc = new Vec8();
        if (aligned != 0)
        {
            ArrayView<byte> xs = x.Cast<byte>();
            long wChunk = wStart / 8, xChunk = xStart / 8;
            int c = lane;
            for (; c + 96 < chunks; c += 128)
            {
                Vec8 w0 = Loads.Chunk(w, wChunk + c, format), w1 = Loads.Chunk(w, wChunk + c + 32, format);
                Vec8 w2 = Loads.Chunk(w, wChunk + c + 64, format), w3 = Loads.Chunk(w, wChunk + c + 96, format);
                acc.Fma(w0, Loads.Chunk(xs, xChunk + c, Format.F32));
                acc.Fma(w1, Loads.Chunk(xs, xChunk + c + 32, Format.F32));
                acc.Fma(w2, Loads.Chunk(xs, xChunk + c + 64, Format.F32));
                acc.Fma(w3, Loads.Chunk(xs, xChunk + c + 96, Format.F32));
            }
            for (; c < chunks; c += 32) acc.Fma(Loads.Chunk(w, wChunk + c, format), Loads.Chunk(xs, xChunk + c, Format.F32));
        }
        else
        {
            for (int c = lane; c < chunks; c += 32)
                acc.Fma(Loads.ChunkPadded(w, wStart, c, length, format), Loads.Activations(x, xStart, c, length));
        }
        return KernelMath.FoldLanes(KernelMath.FoldSlots(acc));
    }
}
