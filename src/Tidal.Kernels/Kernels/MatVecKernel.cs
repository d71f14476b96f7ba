using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// GEMV / small-batch matmul, one warp per (row, batch item): each lane streams 16-byte chunks l, l + 32, … of the
/// weight row (8 F16/BF16 values, or 2×16 bytes of F32) into 8 fma accumulators, folds them, then the warp folds by
/// shuffle-xor. This is the feature-axis order of Tidal.Core.Numerics.Reduction, so results equal
/// Tidal.Core.Reference.Linear.MatMul bit for bit. The batch is the grid's fast axis, so the items of a batch (a
/// prefill chunk) read a weight row at about the same time and share it through L2.
/// </summary>
/// <remarks>
/// F16/BF16 rows with aligned chunks (every weight of a real model) take a kernel compiled per format that keeps two
/// batches of four chunks in flight per lane: the next batch's loads are issued before the current batch is used, so a
/// warp never waits a whole memory latency with nothing in flight. The loads stay raw (4 registers per chunk) until
/// used, which is what lets 8 groups share an SM (see the constructor) with twice the bytes in flight. One row per warp
/// keeps enough warps in flight for short matrices (4096 rows: 31 warps per H100 SM); four rows per warp (one
/// activation load serving four rows) measured 1.3–1.9× slower on an H100 for that reason.
/// </remarks>
public sealed class MatVecKernel
{
    private const int WarpsPerGroup = 4;
    private readonly Action<KernelConfig, ArrayView<byte>, int, ArrayView<float>, ArrayView<float>, int, int, int> _kernel;
    private readonly Action<KernelConfig, ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int> _f16, _bf16;

    /// <summary>Compiles the kernels, on CUDA with registers capped so that 8 groups share an SM: a 4096-row matrix
    /// (1024 groups) then runs in one wave on 132 SMs (uncapped, the loads in flight took ~70 registers, 7 groups
    /// per SM, and a second, nearly empty wave made the 4096×14336 GEMV 1.3× slower).</summary>
    public MatVecKernel(Accelerator accelerator)
    {
        // The CPU accelerator rejects launch bounds.
        var bounds = accelerator.AcceleratorType == AcceleratorType.Cuda ? new KernelSpecialization(32 * WarpsPerGroup, 8) : KernelSpecialization.Empty;
        _kernel = accelerator.LoadStreamKernel<ArrayView<byte>, int, ArrayView<float>, ArrayView<float>, int, int, int>(Run, bounds);
        _f16 = accelerator.LoadStreamKernel<ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int>(RunHalf<F16Weights>, bounds);
        _bf16 = accelerator.LoadStreamKernel<ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int>(RunHalf<BF16Weights>, bounds);
    }

    /// <summary>
    /// y [batch, rows] = x [batch, cols] · wᵀ, w [rows, cols] in <paramref name="format"/>. Rows whose width is a
    /// multiple of 8 (with 16-byte aligned views) use vector loads; other widths load element by element.
    /// </summary>
    public void Launch(ArrayView<byte> w, int format, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int batch)
    {
        bool aligned = Loads.ChunksAligned(cols, w, x);
        var grid = new KernelConfig(new Index2D(batch, (rows + WarpsPerGroup - 1) / WarpsPerGroup), new Index2D(32 * WarpsPerGroup, 1));
        if (aligned && format == Format.F16) _f16(grid, w, x, y, rows, cols);
        else if (aligned && format == Format.BF16) _bf16(grid, w, x, y, rows, cols);
        else _kernel(grid, w, format, x, y, rows, cols, aligned ? 1 : 0);
    }

    private static void Run(ArrayView<byte> w, int format, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int aligned)
    {
        int row = Grid.IdxY * WarpsPerGroup + Warp.WarpIdx, b = Grid.IdxX;
        float sum = WarpDot(w, format, (long)(row < rows ? row : 0) * cols, x, (long)b * cols, cols, aligned);
        if (Warp.LaneIdx == 0 && row < rows) y[(long)b * rows + row] = sum;
    }

    /// <summary>Aligned 16-bit rows: lane l's chunks l, l + 32, … in order, two batches of four in flight (the next
    /// batch's loads are issued before the current one is used).</summary>
    private static void RunHalf<T>(ArrayView<byte> w, ArrayView<float> x, ArrayView<float> y, int rows, int cols) where T : struct, IHalfWeights
    {
        int row = Grid.IdxY * WarpsPerGroup + Warp.WarpIdx, b = Grid.IdxX, lane = Warp.LaneIdx, chunks = cols / 8;
        if (row >= rows) return; // the whole warp: nothing below waits for other warps
        ArrayView<U4> ws = w.Cast<U4>().SubView((long)row * chunks, chunks);
        ArrayView<byte> xs = x.Cast<byte>();
        long xChunk = (long)b * chunks;
        int c = lane;
        U4 a0 = Raw(ws, c, chunks), a1 = Raw(ws, c + 32, chunks), a2 = Raw(ws, c + 64, chunks), a3 = Raw(ws, c + 96, chunks);
        var acc = new Vec8();
        for (; c < chunks; c += 128)
        {
            U4 n0 = Raw(ws, c + 128, chunks), n1 = Raw(ws, c + 160, chunks), n2 = Raw(ws, c + 192, chunks), n3 = Raw(ws, c + 224, chunks);
            acc.Fma(default(T).Widen(a0), Loads.Chunk(xs, xChunk + c, Format.F32));
            if (c + 32 < chunks) acc.Fma(default(T).Widen(a1), Loads.Chunk(xs, xChunk + c + 32, Format.F32));
            if (c + 64 < chunks) acc.Fma(default(T).Widen(a2), Loads.Chunk(xs, xChunk + c + 64, Format.F32));
            if (c + 96 < chunks) acc.Fma(default(T).Widen(a3), Loads.Chunk(xs, xChunk + c + 96, Format.F32));
            a0 = n0; a1 = n1; a2 = n2; a3 = n3;
        }
        float sum = KernelMath.FoldLanes(KernelMath.FoldSlots(acc));
        if (lane == 0) y[(long)b * rows + row] = sum;
    }

    private static U4 Raw(ArrayView<U4> ws, int c, int chunks) => c < chunks ? ws[c] : default;

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
