using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Matmul of a batch of activation rows (prefill, cache correction) by a weight matrix, register-tiled: each warp
/// computes a 4 × 4 tile (4 weight rows × 4 batch items), so every weight chunk it loads serves 4 items and every
/// activation chunk serves 4 rows (<see cref="MatVecKernel"/> reloads the weights for each item, through L2). Lane l
/// keeps the 8 accumulators of feature lane l for each of the 16 outputs and takes chunks l, l + 32, … in order, then
/// folds its slots and the warp folds the lanes: the feature-axis order of Tidal.Core.Numerics.Reduction, so every
/// output equals Tidal.Core.Reference.Linear.MatMul bit for bit. The kernel is compiled per 16-bit weight format, so the
/// loop has no format tests.
/// </summary>
public sealed class MatMulKernel
{
    /// <summary>Weight rows and batch items of one warp's tile.</summary>
    public const int TileRows = 4, TileItems = 4;

    private const int WarpsPerGroup = 4;

    private readonly Action<KernelConfig, ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int, int> _f16, _bf16;

    /// <summary>Compiles the kernel for each 16-bit weight format.</summary>
    public MatMulKernel(Accelerator accelerator)
    {
        _f16 = accelerator.LoadStreamKernel<ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int, int>(Run<F16Weights>);
        _bf16 = accelerator.LoadStreamKernel<ArrayView<byte>, ArrayView<float>, ArrayView<float>, int, int, int>(Run<BF16Weights>);
    }

    /// <summary>Whether the kernel can run these operands: F16 or BF16 weights (two columns of F32 weights in flight
    /// would not fit in registers; <see cref="MatVecKernel"/> serves them), 16-byte aligned rows of a multiple of 8 elements.</summary>
    public static bool Supports(int format, ArrayView<byte> w, ArrayView<float> x, int cols) =>
        format is Format.F16 or Format.BF16 && Loads.ChunksAligned(cols, w, x);

    /// <summary>y [batch, rows] = x [batch, cols] · wᵀ, w [rows, cols] in <paramref name="format"/>; see <see cref="Supports"/>.</summary>
    public void Launch(ArrayView<byte> w, int format, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int batch)
    {
        if (!Supports(format, w, x, cols)) throw new ArgumentException($"the tiled matmul needs F16 or BF16 weights (format {format}), 16-byte aligned operands and a multiple of 8 columns ({cols}).", nameof(cols));
        int itemTiles = (batch + TileItems - 1) / TileItems, rowTiles = (rows + TileRows * WarpsPerGroup - 1) / (TileRows * WarpsPerGroup);
        // Item tiles are the grid's fast axis: the groups that share a band of weight rows run at about the same time.
        (format == Format.F16 ? _f16 : _bf16)(new KernelConfig(new Index2D(itemTiles, rowTiles), new Index2D(32 * WarpsPerGroup, 1)), w, x, y, rows, cols, batch);
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

    /// <summary>One chunk column of a warp's tile: lane l's chunk of each of the 4 weight rows (raw, 4 registers each,
    /// widened when used) and of each of the 4 items' activations.</summary>
    private struct Column
    {
        public U4 W0, W1, W2, W3;
        public Vec8 X0, X1, X2, X3;
    }

    /// <summary>The 16 outputs' accumulators of a warp's tile.</summary>
    private struct Tile
    {
        public RowTile R0, R1, R2, R3;

        public void Fma<T>(in Column c) where T : struct, IHalfWeights
        {
            R0.Fma(default(T).Widen(c.W0), c.X0, c.X1, c.X2, c.X3);
            R1.Fma(default(T).Widen(c.W1), c.X0, c.X1, c.X2, c.X3);
            R2.Fma(default(T).Widen(c.W2), c.X0, c.X1, c.X2, c.X3);
            R3.Fma(default(T).Widen(c.W3), c.X0, c.X1, c.X2, c.X3);
        }
    }

    /// <summary>The operands of chunk c (views of the tile's rows and items, so each load is one int offset).</summary>
    private static Column Load(ArrayView<U4> w0, ArrayView<U4> w1, ArrayView<U4> w2, ArrayView<U4> w3,
        ArrayView<F4> x0, ArrayView<F4> x1, ArrayView<F4> x2, ArrayView<F4> x3, int c)
    {
        var col = new Column { W0 = w0[c], W1 = w1[c], W2 = w2[c], W3 = w3[c] };
        col.X0 = Chunk(x0, c); col.X1 = Chunk(x1, c); col.X2 = Chunk(x2, c); col.X3 = Chunk(x3, c);
        return col;
    }

    private static Vec8 Chunk(ArrayView<F4> x, int c)
    {
        F4 a = x[2 * c], b = x[2 * c + 1];
        var v = new Vec8();
        v.F0 = a.X; v.F1 = a.Y; v.F2 = a.Z; v.F3 = a.W; v.F4 = b.X; v.F5 = b.Y; v.F6 = b.Z; v.F7 = b.W;
        return v;
    }

    private static void Run<T>(ArrayView<byte> w, ArrayView<float> x, ArrayView<float> y, int rows, int cols, int batch) where T : struct, IHalfWeights
    {
        int row = (Grid.IdxY * WarpsPerGroup + Warp.WarpIdx) * TileRows, item = Grid.IdxX * TileItems, lane = Warp.LaneIdx;
        if (row >= rows) return; // whole warps leave: the folds below shuffle within a warp only
        int chunks = cols / 8, last = chunks - 1;
        // Rows and items past the end repeat the last one (valid loads, results not written).
        ArrayView<U4> ws = w.Cast<U4>();
        ArrayView<F4> xs = x.Cast<F4>();
        ArrayView<U4> w0 = ws.SubView((long)row * chunks, chunks), w1 = ws.SubView((long)Math.Min(row + 1, rows - 1) * chunks, chunks);
        ArrayView<U4> w2 = ws.SubView((long)Math.Min(row + 2, rows - 1) * chunks, chunks), w3 = ws.SubView((long)Math.Min(row + 3, rows - 1) * chunks, chunks);
        ArrayView<F4> x0 = xs.SubView(2L * item * chunks, 2 * chunks), x1 = xs.SubView(2L * Math.Min(item + 1, batch - 1) * chunks, 2 * chunks);
        ArrayView<F4> x2 = xs.SubView(2L * Math.Min(item + 2, batch - 1) * chunks, 2 * chunks), x3 = xs.SubView(2L * Math.Min(item + 3, batch - 1) * chunks, 2 * chunks);
        var tile = new Tile();
        // Lane l takes chunks l, l + 32, … in order, two columns in flight: each column's loads are issued before the
        // previous column is used, so a warp always has a column's loads in flight while it computes (one column at
        // a time measured latency-bound: 202 registers leave 8 warps per SM). The loop is written out twice (ILGPU does
        // not unroll), so the two columns keep their registers instead of moving each iteration. Loads past the row's
        // end read its last chunk again and are not used.
        Column a = Load(w0, w1, w2, w3, x0, x1, x2, x3, Math.Min(lane, last));
        for (int c = lane; c < chunks; c += 64)
        {
            Column b = Load(w0, w1, w2, w3, x0, x1, x2, x3, Math.Min(c + 32, last));
            tile.Fma<T>(a);
            if (c + 32 >= chunks) break;
            a = Load(w0, w1, w2, w3, x0, x1, x2, x3, Math.Min(c + 64, last));
            tile.Fma<T>(b);
        }
        tile.R0.Store(y, row, rows, item, batch);
        tile.R1.Store(y, row + 1, rows, item, batch);
        tile.R2.Store(y, row + 2, rows, item, batch);
        tile.R3.Store(y, row + 3, rows, item, batch);
    }
}
