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
/// used, which is what lets 8 groups share an SM (see the constructor) with twice the bytes in flight.
/// For one batch item (a decode step) its groups stay resident (the grid is what the device holds at once), and warp w takes rows w,
/// w + the grid's warps, …, the next row's first batch issued while the current row's last batch is used. Each group stages its batch
/// item's activations in shared memory, a window of <see cref="WindowChunks"/> chunks at a time (wider rows are staged
/// window by window): read from global memory, a lane's 32 bytes of activations per chunk were two half-used 16-byte
/// loads in the loop's dependency chain (ncu: 40 % of the L1's sectors wasted; with 14336 columns a fifth of them
/// missed L1, since the weights streaming through evicted them), and a group per 4 rows left a partial last wave.
/// </remarks>
public sealed class MatVecKernel
{
    private const int WarpsPerGroup = 4;

    /// <summary>Chunks of activations a group stages at once (24 KB, so that 8 groups share an SM's shared memory); a
    /// multiple of a batch (4 × 32 chunks), so that the batch after a window's last is the next window's first.</summary>
    private const int WindowChunks = 768;

    private readonly Accelerator _accelerator;
    private readonly Action<KernelConfig, ArrayView<byte>, int, ArrayView<float>, ArrayView<float>, int, int, int> _kernel;
    private readonly Action<KernelConfig, ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int, int> _f16, _bf16;
    private readonly Action<KernelConfig, ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int> _batchF16, _batchBF16;
    private readonly Dictionary<int, int> _slots = [];

    /// <summary>Compiles the kernels, on CUDA with registers capped so that 8 groups share an SM (uncapped, the loads in
    /// flight took ~70 registers and 7 groups fitted).</summary>
    public MatVecKernel(Accelerator accelerator)
    {
        _accelerator = accelerator;
        // The CPU accelerator rejects launch bounds.
        var bounds = accelerator.AcceleratorType == AcceleratorType.Cuda ? new KernelSpecialization(32 * WarpsPerGroup, 8) : KernelSpecialization.Empty;
        _kernel = accelerator.LoadStreamKernel<ArrayView<byte>, int, ArrayView<float>, ArrayView<float>, int, int, int>(Run, bounds);
        _f16 = accelerator.LoadStreamKernel<ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int, int>(RunHalf<F16Weights>, bounds);
        _bf16 = accelerator.LoadStreamKernel<ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int, int>(RunHalf<BF16Weights>, bounds);
        _batchF16 = accelerator.LoadStreamKernel<ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int>(RunBatch<F16Weights>, bounds);
        _batchBF16 = accelerator.LoadStreamKernel<ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int>(RunBatch<BF16Weights>, bounds);
    }

    /// <summary>
    /// y [batch, rows] = x [batch, cols] · wᵀ, w [rows, cols] in <paramref name="format"/>. Rows whose width is a
    /// multiple of 8 (with 16-byte aligned views) use vector loads; other widths load element by element.
    /// </summary>
    public void Launch(ArrayView<byte> w, int format, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int batch)
    {
        bool aligned = Loads.ChunksAligned(cols, w, x);
        int groups = (rows + WarpsPerGroup - 1) / WarpsPerGroup;
        var grid = new KernelConfig(new Index2D(batch, groups), new Index2D(32 * WarpsPerGroup, 1));
        bool half = aligned && format is Format.F16 or Format.BF16;
        if (half && batch == 1)
        {
            var kernel = format == Format.F16 ? _f16 : _bf16;
            int f4s = 2 * Math.Min(WindowChunks, (cols / 8 + 31) / 32 * 32);
            groups = Math.Min(groups, Slots(kernel, f4s));
            kernel(new KernelConfig(new Index2D(1, groups), new Index2D(32 * WarpsPerGroup, 1), SharedMemoryConfig.RequestDynamic<F4>(f4s)),
                w, x, y, rows, cols, groups * WarpsPerGroup);
        }
        // Several items: a warp per row and item, the items of a row side by side in the grid, so that they read the row
        // at about the same time and share it through L2. (Staging the activations per group of 4 rows here cost more
        // than it saved: 32 items of 14336 × 4096 623 → 920 µs on an H200.)
        else if (half) (format == Format.F16 ? _batchF16 : _batchBF16)(grid, w, x, y, rows, cols);
        else _kernel(grid, w, format, x, y, rows, cols, aligned ? 1 : 0);
    }

    /// <summary>Groups the device holds at once with <paramref name="f4s"/> F4s of shared memory each (on the CPU
    /// accelerator two per multiprocessor, so that warps take several rows there too).</summary>
    private int Slots(Delegate kernel, int f4s)
    {
        if (_slots.TryGetValue(f4s, out int slots)) return slots;
        slots = _accelerator.AcceleratorType == AcceleratorType.Cuda
            ? _accelerator.NumMultiprocessors * _accelerator.EstimateMaxActiveGroupsPerMultiprocessor(kernel.GetKernel(), 32 * WarpsPerGroup, 16 * f4s)
            : 2 * _accelerator.NumMultiprocessors;
        return _slots[f4s] = Math.Max(1, slots);
    }

    private static void Run(ArrayView<byte> w, int format, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int aligned)
    {
        int row = Grid.IdxY * WarpsPerGroup + Warp.WarpIdx, b = Grid.IdxX;
        float sum = WarpDot(w, format, (long)(row < rows ? row : 0) * cols, x, (long)b * cols, cols, aligned);
        if (Warp.LaneIdx == 0 && row < rows) y[(long)b * rows + row] = sum;
    }

    /// <summary>Aligned 16-bit rows: batch item b's rows w, w + <paramref name="rowStride"/>, … per warp w, lane l
    /// accumulating chunks l, l + 32, … in order; activations from shared memory, window by window.</summary>
    private static void RunHalf<T>(ArrayView<byte> w, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int rowStride) where T : struct, IHalfWeights
    {
        ArrayView<F4> staged = SharedMemory.GetDynamic<F4>();
        int b = Grid.IdxX, lane = Warp.LaneIdx, chunks = cols / 8, window = (int)staged.Length / 2;
        ArrayView<U4> weights = w.Cast<U4>();
        ArrayView<F4> x4 = x.Cast<F4>().SubView((long)b * 2 * chunks, 2 * chunks);
        int firstRow = Grid.IdxY * WarpsPerGroup, row = firstRow + Warp.WarpIdx;
        // Rows past the end (in the last round) load nothing but still meet the group's barriers.
        int limit = row < rows ? chunks : 0;
        ArrayView<U4> ws = weights.SubView((long)(row < rows ? row : 0) * chunks, chunks);
        U4 a0 = Raw(ws, lane, limit), a1 = Raw(ws, lane + 32, limit), a2 = Raw(ws, lane + 64, limit), a3 = Raw(ws, lane + 96, limit);
        for (int first = firstRow; first < rows; first += rowStride) // group-uniform: barriers inside
        {
            int next = row + rowStride, nextLimit = next < rows ? chunks : 0;
            ArrayView<U4> nextWs = weights.SubView((long)(next < rows ? next : 0) * chunks, chunks);
            var acc = new Vec8();
            for (int start = 0; start < chunks; start += window)
            {
                int end = Math.Min(chunks, start + window);
                if (first == firstRow || window < chunks) Stage(x4, staged, start, end);
                var xs = new StagedActivations { X = staged, First = start };
                for (int batch = start; batch < end; batch += 128)
                {
                    // The batch after this one: the row's next, or the next row's first.
                    bool rowEnd = batch + 128 >= chunks;
                    ArrayView<U4> source = rowEnd ? nextWs : ws;
                    int c = batch + lane, n = (rowEnd ? 0 : batch + 128) + lane, nLimit = rowEnd ? nextLimit : limit;
                    U4 n0 = Raw(source, n, nLimit), n1 = Raw(source, n + 32, nLimit), n2 = Raw(source, n + 64, nLimit), n3 = Raw(source, n + 96, nLimit);
                    AddBatch<T, StagedActivations>(ref acc, xs, c, end, a0, a1, a2, a3);
                    a0 = n0; a1 = n1; a2 = n2; a3 = n3;
                }
            }
            float sum = KernelMath.FoldLanes(KernelMath.FoldSlots(acc));
            if (lane == 0 && row < rows) y[(long)b * rows + row] = sum;
            row = next; limit = nextLimit; ws = nextWs;
        }
    }

    /// <summary>Aligned 16-bit rows for several batch items: one row and item per warp, activations from global memory.</summary>
    private static void RunBatch<T>(ArrayView<byte> w, ArrayView<float> x, ArrayView<float> y, int rows, int cols) where T : struct, IHalfWeights
    {
        int row = Grid.IdxY * WarpsPerGroup + Warp.WarpIdx, b = Grid.IdxX, lane = Warp.LaneIdx, chunks = cols / 8;
        if (row >= rows) return; // the whole warp: nothing below waits for other warps
        ArrayView<U4> ws = w.Cast<U4>().SubView((long)row * chunks, chunks);
        var xs = new GlobalActivations { X = x.Cast<byte>(), First = (long)b * chunks };
        U4 a0 = Raw(ws, lane, chunks), a1 = Raw(ws, lane + 32, chunks), a2 = Raw(ws, lane + 64, chunks), a3 = Raw(ws, lane + 96, chunks);
        var acc = new Vec8();
        for (int batch = 0; batch < chunks; batch += 128)
        {
            int n = batch + 128 + lane;
            U4 n0 = Raw(ws, n, chunks), n1 = Raw(ws, n + 32, chunks), n2 = Raw(ws, n + 64, chunks), n3 = Raw(ws, n + 96, chunks);
            AddBatch<T, GlobalActivations>(ref acc, xs, batch + lane, chunks, a0, a1, a2, a3);
            a0 = n0; a1 = n1; a2 = n2; a3 = n3;
        }
        float sum = KernelMath.FoldLanes(KernelMath.FoldSlots(acc));
        if (lane == 0) y[(long)b * rows + row] = sum;
    }

    /// <summary>Adds a lane's chunks c, c + 32, c + 64, c + 96 (raw a0 … a3) below <paramref name="end"/>, in order.</summary>
    private static void AddBatch<T, X>(ref Vec8 acc, in X xs, int c, int end, U4 a0, U4 a1, U4 a2, U4 a3) where T : struct, IHalfWeights where X : struct, IActivations
    {
        if (c < end) acc.Fma(default(T).Widen(a0), xs.Chunk(c));
        if (c + 32 < end) acc.Fma(default(T).Widen(a1), xs.Chunk(c + 32));
        if (c + 64 < end) acc.Fma(default(T).Widen(a2), xs.Chunk(c + 64));
        if (c + 96 < end) acc.Fma(default(T).Widen(a3), xs.Chunk(c + 96));
    }

    /// <summary>Where a warp reads chunk c (8 floats) of its batch item's activations.</summary>
    private interface IActivations
    {
        Vec8 Chunk(int c);
    }

    /// <summary>From global memory: two 16-byte loads.</summary>
    private struct GlobalActivations : IActivations
    {
        public ArrayView<byte> X;
        public long First;

        public readonly Vec8 Chunk(int c) => Loads.Chunk(X, First + c, Format.F32);
    }

    /// <summary>Chunks [start, end) of the activations into shared memory (<see cref="StagedActivations"/>'s layout),
    /// between barriers: the group's warps have finished with the previous window, and see the whole new one.</summary>
    private static void Stage(ArrayView<F4> x4, ArrayView<F4> staged, int start, int end)
    {
        Group.Barrier();
        for (int e = 2 * start + Group.IdxX; e < 2 * end; e += Group.DimX) staged[StagedActivations.Slot(e / 2 - start) + 32 * (e % 2)] = x4[e];
        Group.Barrier();
    }

    /// <summary>A window of activations in shared memory, laid out so that the 32 lanes' chunks c, c + 1, …, c + 31 (c − First a
    /// multiple of 32) are 32 consecutive F4s (first halves), then 32 more (second halves): one conflict-free 512-byte
    /// read per load.</summary>
    private struct StagedActivations : IActivations
    {
        public ArrayView<F4> X;
        public int First;

        /// <summary>The F4 of the window's chunk i's first half (the second is 32 F4s on).</summary>
        public static int Slot(int i) => i / 32 * 64 + i % 32;

        public readonly Vec8 Chunk(int c)
        {
            int i = Slot(c - First);
            F4 a = X[i], b = X[i + 32];
            var v = new Vec8();
            v.F0 = a.X; v.F1 = a.Y; v.F2 = a.Z; v.F3 = a.W; v.F4 = b.X; v.F5 = b.Y; v.F6 = b.Z; v.F7 = b.W;
            return v;
        }
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
