using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Matmul of a batch of activation rows (prefill, cache correction) by a weight matrix, register-tiled: each warp
/// computes a 4 × 4 tile (4 weight rows × 4 batch items), so every weight chunk it loads serves 4 items and every
/// activation chunk serves 4 rows (<see cref="MatVecKernel"/> reloads the weights for each item, through L2). Lane l
/// keeps the 8 accumulators of feature lane l for each of the 16 outputs and takes chunks l, l + 32, … in order, then
/// folds its slots and the warp folds the lanes: the feature-axis order of Tidal.Core.Numerics.Reduction, so every
/// output equals Tidal.Core.Reference.Linear.MatMul bit for bit. The kernel is compiled per weight format, so the loop
/// has no format tests.
/// </summary>
public sealed class MatMulKernel
{
    /// <summary>Weight rows and batch items of one warp's tile.</summary>
    public const int TileRows = 4, TileItems = 4;

    private const int WarpsPerGroup = 4;

    private readonly Action<KernelConfig, ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int, int>[] _kernels;

    /// <summary>Compiles the kernel for each weight format (indexed by <see cref="Format"/>).</summary>
    public MatMulKernel(Accelerator accelerator) =>
        _kernels =
        [
            accelerator.LoadStreamKernel<ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int, int>(Run<F32Weights>),
            accelerator.LoadStreamKernel<ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int, int>(Run<F16Weights>),
            accelerator.LoadStreamKernel<ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int, int>(Run<BF16Weights>),
        ];

    /// <summary>Whether the kernel can run these operands: 16-byte aligned rows of a multiple of 8 elements.</summary>
    public static bool Supports(ArrayView<byte> w, ArrayView<float> x, int cols) =>
        Loads.ChunksAligned(cols, w, x);

    /// <summary>y [batch, rows] = x [batch, cols] · wᵀ, w [rows, cols] in <paramref name="format"/>; see <see cref="Supports"/>.</summary>
    public void Launch(ArrayView<byte> w, int format, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int batch)
    {
        if (!Supports(w, x, cols)) throw new ArgumentException($"the tiled matmul needs 16-byte aligned operands and a multiple of 8 columns, got {cols}.", nameof(cols));
        int itemTiles = (batch + TileItems - 1) / TileItems, rowTiles = (rows + TileRows * WarpsPerGroup - 1) / (TileRows * WarpsPerGroup);
        // Item tiles are the grid's fast axis: the groups that share a band of weight rows run at about the same time.
        _kernels[format](new KernelConfig(new Index2D(itemTiles, rowTiles), new Index2D(32 * WarpsPerGroup, 1)), w, x, y, rows, cols, batch);
    }

    /// <summary>The 4 items' accumulators of one weight row.</summary>
    private struct RowTile
    {
        public Vec8 I0, I1, I2, I3;

        public void Fma(in Vec8 w, in Vec8 x0, in Vec8 x1, in Vec8 x2, in Vec8 x3)
        {
            I0.Fma(w, x0);
            I1.Fma(w, x1);
            I2.Fma(w, x2);
            I3.Fma(w, x3);
        }

        /// <summary>Folds each item's slots and lanes; lane 0 writes the rows that exist.</summary>
        public readonly void Store(ArrayView<float> y, int row, int rows, int item, int batch)
        {
            float s0 = KernelMath.FoldLanes(KernelMath.FoldSlots(I0)), s1 = KernelMath.FoldLanes(KernelMath.FoldSlots(I1));
            float s2 = KernelMath.FoldLanes(KernelMath.FoldSlots(I2)), s3 = KernelMath.FoldLanes(KernelMath.FoldSlots(I3));
            if (Warp.LaneIdx != 0 || row >= rows) return;
            if (item < batch) y[(long)item * rows + row] = s0;
            if (item + 1 < batch) y[(long)(item + 1) * rows + row] = s1;
            if (item + 2 < batch) y[(long)(item + 2) * rows + row] = s2;
            if (item + 3 < batch) y[(long)(item + 3) * rows + row] = s3;
        }
    }

    private static void Run<T>(ArrayView<byte> w, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int batch) where T : struct, IWeights
    {
        int row = (Grid.IdxY * WarpsPerGroup + Warp.WarpIdx) * TileRows, item = Grid.IdxX * TileItems, lane = Warp.LaneIdx;
        if (row >= rows) return; // whole warps leave: the folds below shuffle within a warp only
        int chunks = cols / 8;
        // Rows and items past the end repeat the last one (valid loads, results not written).
        long w0 = (long)row * chunks, w1 = (long)Math.Min(row + 1, rows - 1) * chunks;
        long w2 = (long)Math.Min(row + 2, rows - 1) * chunks, w3 = (long)Math.Min(row + 3, rows - 1) * chunks;
        long x0 = (long)item * chunks, x1 = (long)Math.Min(item + 1, batch - 1) * chunks;
        long x2 = (long)Math.Min(item + 2, batch - 1) * chunks, x3 = (long)Math.Min(item + 3, batch - 1) * chunks;
        ArrayView<byte> xs = x.Cast<byte>();
        var t0 = new RowTile();
        var t1 = new RowTile();
        var t2 = new RowTile();
        var t3 = new RowTile();
        for (int c = lane; c < chunks; c += 32)
        {
            Vec8 a0 = Loads.Chunk(xs, x0 + c, Format.F32), a1 = Loads.Chunk(xs, x1 + c, Format.F32);
            Vec8 a2 = Loads.Chunk(xs, x2 + c, Format.F32), a3 = Loads.Chunk(xs, x3 + c, Format.F32);
            Vec8 b0 = default(T).Load(w, w0 + c), b1 = default(T).Load(w, w1 + c);
            Vec8 b2 = default(T).Load(w, w2 + c), b3 = default(T).Load(w, w3 + c);
            t0.Fma(b0, a0, a1, a2, a3);
            t1.Fma(b1, a0, a1, a2, a3);
            t2.Fma(b2, a0, a1, a2, a3);
            t3.Fma(b3, a0, a1, a2, a3);
        }
        t0.Store(y, row, rows, item, batch);
        t1.Store(y, row + 1, rows, item, batch);
        t2.Store(y, row + 2, rows, item, batch);
        t3.Store(y, row + 3, rows, item, batch);
    }
}
