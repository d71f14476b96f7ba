using System.Buffers;
using System.Runtime.Intrinsics;
using Tidal.Core.Numerics;

namespace Tidal.Core.Reference;

/// <summary>Matrix–vector products with F32, F16 or BF16 weights and F32 activations: the bulk of decode time.</summary>
public static class Linear
{
    /// <summary>Work (rows × cols) above which rows are split across threads. Rows are independent, so threading never changes bits.</summary>
    private const long ParallelThreshold = 1 << 18;

    /// <summary>Batch items that one vector of the token-block path holds (a 256-bit vector of floats).</summary>
    private const int TokenBlock = 8;

    /// <summary>
    /// Smallest batch that takes the token-block path: below it the padding of a block to 8 items costs more than the
    /// per-dot folds it saves; at 4 the two paths were about even, from 5 on the blocks won (BF16 768×256 and
    /// 4096×4096 weights on a 2-core AVX2 machine).
    /// </summary>
    private const int MinBlockBatch = 4;

    /// <summary>Floats of widened weight rows one tile of the token-block path holds (128 KB).</summary>
    private const int TileFloats = 1 << 15;

    /// <summary>Most rows in a tile of the token-block path.</summary>
    private const int MaxTileRows = 16;

    /// <summary>y[r] = Σ_c w[r, c] · x[c], each row in the feature-axis order of <see cref="Reduction"/>. w is row-major [rows, cols].</summary>
    /// <exception cref="ArgumentException">w is not [y.Length, x.Length].</exception>
    public static void MatVec<TW>(ReadOnlySpan<TW> w, ReadOnlySpan<float> x, Span<float> y) where TW : unmanaged =>
        MatMul(w, x, y, batch: 1);

    /// <summary>
    /// Y[b, r] = Σ_c w[r, c] · X[b, c] for a batch: X is [batch, cols], Y is [batch, rows], w is [rows, cols].
    /// Each output is the same canonical dot as <see cref="MatVec{TW}"/>.
    /// </summary>
    /// <remarks>
    /// A batch of <see cref="MinBlockBatch"/> or more (prefill) runs eight items per vector: X is transposed once into
    /// blocks of eight items, so each (lane, slot) accumulator of the canonical order is one vector whose elements are
    /// the same accumulator of eight different dots. The elements take the same fused multiply-adds in the same order
    /// and the folds are the same additions, so the bits are those of <see cref="Reduction.Dot{TA}(ReadOnlySpan{TA}, ReadOnlySpan{float})"/>;
    /// what changes is that the 8 × 32 folds of a dot are shared by eight dots and each widened weight serves the
    /// whole block.
    /// </remarks>
    /// <exception cref="ArgumentException">Shapes do not agree or batch ≤ 0.</exception>
    public static unsafe void MatMul<TW>(ReadOnlySpan<TW> w, ReadOnlySpan<float> x, Span<float> y, int batch) where TW : unmanaged
    {
        if (batch <= 0) throw new ArgumentException($"batch must be > 0, got {batch}.", nameof(batch));
        if (x.Length % batch != 0 || y.Length % batch != 0)
            throw new ArgumentException($"x ({x.Length}) and y ({y.Length}) must hold {batch} rows each.", nameof(batch));
        int cols = x.Length / batch, rows = y.Length / batch;
        if (cols == 0 || rows == 0) throw new ArgumentException("x and y must not be empty.", nameof(x));
        if (w.Length != (long)rows * cols)
            throw new ArgumentException($"w has {w.Length} elements but must be [{rows}, {cols}] = {(long)rows * cols}.", nameof(w));

        // A batch whose transposed, padded copy would not fit one array takes the row path, which has no such copy.
        if (batch >= MinBlockBatch && TransposedLength(cols, batch) <= Array.MaxLength)
        {
            MatMulBlocks(w, x, y, rows, cols, batch);
            return;
        }
        fixed (TW* pw = w)
        fixed (float* px = x)
        fixed (float* py = y)
        {
            ForRows(new RowJob<TW>(pw, px, py, rows, cols, batch), rows, (long)rows * cols * batch);
        }
    }

    /// <summary>The rows [rowStart, rowEnd) of a matrix product.</summary>
    private interface IRowJob
    {
        void Run(int rowStart, int rowEnd);
    }

    /// <summary>Runs <paramref name="job"/> over [0, rows), split into ranges across threads when the work is large.</summary>
    private static void ForRows<TJob>(TJob job, int rows, long work) where TJob : struct, IRowJob
    {
        if (work < ParallelThreshold || Environment.ProcessorCount == 1)
        {
            job.Run(0, rows);
            return;
        }
        int blocks = Math.Min(rows, Environment.ProcessorCount * 4);
        Parallel.For(0, blocks, b => job.Run((int)((long)rows * b / blocks), (int)((long)rows * (b + 1) / blocks)));
    }

    private readonly unsafe struct RowJob<TW>(TW* w, float* x, float* y, int rows, int cols, int batch) : IRowJob where TW : unmanaged
    {
        public void Run(int rowStart, int rowEnd)
        {
            for (int r = rowStart; r < rowEnd; r++)
            {
                var row = new ReadOnlySpan<TW>(w + (long)r * cols, cols);
                for (int b = 0; b < batch; b++)
                    y[(long)b * rows + r] = Reduction.Dot(row, new ReadOnlySpan<float>(x + (long)b * cols, cols));
            }
        }
    }

    /// <summary>Floats of X transposed into blocks of eight items, each block's columns padded to whole chunks.</summary>
    private static long TransposedLength(int cols, int batch) =>
        (long)((batch + TokenBlock - 1) / TokenBlock) * TokenBlock * Reduction.Chunks(cols) * Reduction.Width;

    private static unsafe void MatMulBlocks<TW>(ReadOnlySpan<TW> w, ReadOnlySpan<float> x, Span<float> y, int rows, int cols, int batch)
        where TW : unmanaged
    {
        int padded = Reduction.Chunks(cols) * Reduction.Width, length = (int)TransposedLength(cols, batch);
        // xt[(block · padded + c) · 8 + t] = X[block · 8 + t, c]; the padding (items past the batch, columns past
        // cols) is +0, and a +0 weight times a +0 item added to an accumulator leaves it unchanged.
        float[] xt = ArrayPool<float>.Shared.Rent(length);
        try
        {
            Array.Clear(xt, 0, length);
            for (int b = 0; b < batch; b++)
            {
                ReadOnlySpan<float> item = x.Slice(b * cols, cols);
                int offset = (b / TokenBlock) * padded * TokenBlock + b % TokenBlock;
                for (int c = 0; c < cols; c++) xt[offset + c * TokenBlock] = item[c];
            }
            fixed (TW* pw = w)
            fixed (float* pxt = xt)
            fixed (float* py = y)
            {
                ForRows(new BlockJob<TW>(pw, pxt, py, rows, cols, batch), rows, (long)rows * cols * batch);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(xt);
        }
    }

    private readonly unsafe struct BlockJob<TW>(TW* w, float* xt, float* y, int rows, int cols, int batch) : IRowJob where TW : unmanaged
    {
        public void Run(int rowStart, int rowEnd)
        {
            int chunks = Reduction.Chunks(cols), padded = chunks * Reduction.Width;
            int used = Math.Min(chunks, Reduction.Lanes);
            // A tile of rows, widened once, takes each block's lanes in turn, so the block's lane slice (1/32 of it)
            // is read from memory once per tile and from L1 by the tile's other rows; the tile's widened rows stay
            // within about 128 KB of L2.
            int tile = Math.Clamp(TileFloats / padded, 1, MaxTileRows);
            float[] widened = ArrayPool<float>.Shared.Rent(tile * padded);
            Span<Vector256<float>> lanes = stackalloc Vector256<float>[MaxTileRows * Reduction.Lanes];
            try
            {
                fixed (float* wf = widened)
                {
                    for (int r0 = rowStart; r0 < rowEnd; r0 += tile)
                    {
                        int n = Math.Min(tile, rowEnd - r0);
                        for (int i = 0; i < n; i++)
                        {
                            Span<float> row = widened.AsSpan(i * padded, padded);
                            Conversions.ToSingle(new ReadOnlySpan<TW>(w + (long)(r0 + i) * cols, cols), row.Slice(0, cols));
                            row.Slice(cols).Clear();
                        }
                        for (int block = 0; block * TokenBlock < batch; block++)
                        {
                            float* items = xt + (long)block * padded * TokenBlock;
                            for (int l = 0; l < used; l++)
                                for (int i = 0; i < n; i++)
                                    lanes[i * Reduction.Lanes + l] = Reduction.LaneOfEight(wf + (long)i * padded, items, l, Reduction.Lanes, chunks);
                            int count = Math.Min(TokenBlock, batch - block * TokenBlock);
                            for (int i = 0; i < n; i++)
                            {
                                Vector256<float> sums = Reduction.FoldHalving(lanes.Slice(i * Reduction.Lanes, used));
                                for (int t = 0; t < count; t++) y[(long)(block * TokenBlock + t) * rows + r0 + i] = sums.GetElement(t);
                            }
                        }
                    }
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(widened);
            }
        }
    }
}
