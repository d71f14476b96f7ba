using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Tidal.Core.Numerics;

namespace Tidal.Core.Reference;

public static partial class Attention
{
    /// <summary>Rows whose scores one pass of <see cref="Causal{T}"/> computes together (a 256-bit vector of floats).</summary>
    private const int RowBlock = 8;

    /// <summary>
    /// Causal attention over a chunk of rows (prefill, cache correction): row r attends positions [0, first + r), with
    /// the bits of <see cref="DecodeDense{T}"/> at that length (the same splits, arithmetic and merge).
    /// </summary>
    /// <param name="q">Row r's queries, [nHeads, headDim], start at r · <paramref name="qStride"/> (rows may be fused QKV rows).</param>
    /// <param name="kv">The layer's cache with every row's K/V appended; its length is at least first + rows − 1.</param>
    /// <param name="output">[rows, nHeads, headDim].</param>
    /// <remarks>
    /// Eight consecutive rows of a KV head share each split's pass over the keys: every (lane, slot) accumulator of a
    /// score is a vector over the eight rows, so a K row is widened once and each fold serves eight scores, which is
    /// most of a decode attention's arithmetic. Each element takes its row's fused multiply-adds and additions in the
    /// canonical order, and a row uses only the scores of its own positions. The rest of each split (maximum,
    /// probabilities, the token-axis sums of p·V, the merge) runs per row as decode attention does. A block whose rows
    /// split differently (the chunk crosses a split-size boundary) runs as separate decode attentions.
    /// </remarks>
    /// <exception cref="ArgumentException">Shapes disagree, or a row's positions lie outside the cache.</exception>
    public static unsafe void Causal<T>(ReadOnlySpan<float> q, int qStride, KvView<T> kv, int first, int rows, Span<float> output)
        where T : unmanaged
    {
        if (rows <= 0 || output.Length % rows != 0) throw new ArgumentException($"output ({output.Length}) is not [rows {rows}, nHeads, headDim].", nameof(output));
        int width = output.Length / rows, d = kv.HeadDim, heads = width / d, group = kv.GroupSize(width);
        if (qStride < width || q.Length < (long)(rows - 1) * qStride + width)
            throw new ArgumentException($"q ({q.Length}) does not hold {rows} rows of {width} queries {qStride} apart.", nameof(q));
        if (first < 1 || first + rows - 1 > kv.Length)
            throw new ArgumentException($"rows attend to [0, {first}) … [0, {first + rows - 1}); the cache holds {kv.Length} positions.", nameof(first));

        int blocks = (rows + RowBlock - 1) / RowBlock, kvHeads = kv.KvHeads;
        fixed (float* pq = q)
        fixed (T* pk = kv.Keys)
        fixed (T* pv = kv.Values)
        fixed (float* po = output)
        {
            var job = new CausalJob<T>(pq, qStride, pk, pv, po, kv.Capacity, d, heads, group, first, rows);
            Parallel.For(0, blocks * kvHeads, i => job.Run(i / kvHeads, i % kvHeads));
        }
    }

    private readonly unsafe struct CausalJob<T>(float* q, int qStride, T* keys, T* values, float* output, int capacity,
        int headDim, int heads, int group, int first, int rows) where T : unmanaged
    {
        /// <summary>Rows [block · 8, block · 8 + 8) ∩ [0, rows), query heads of <paramref name="kvHead"/>.</summary>
        public void Run(int block, int kvHead)
        {
            int r0 = block * RowBlock, count = Math.Min(RowBlock, rows - r0), d = headDim;
            int size = DecodeSplitSize(first + r0);
            if (DecodeSplitSize(first + r0 + count - 1) != size)
            {
                for (int i = 0; i < count; i++) DecodeRow(r0 + i, kvHead);
                return;
            }
            int longest = first + r0 + count - 1, splits = (longest + size - 1) / size;
            long headBase = (long)kvHead * capacity * d;
            // Keys and queries in whole chunks of the feature-axis order (a partial last chunk padded with +0).
            int chunks = Reduction.Chunks(d), dk = chunks * Reduction.Width;
            int qtLength = group * dk * RowBlock, scoreLength = size * RowBlock, widenedLength = typeof(T) == typeof(float) && dk == d ? 0 : size * (dk + d);
            int rowLength = size + Reduction.Slots * (d + 1), partialLength = count * splits * group * (d + 1);
            float[] scratch = ArrayPool<float>.Shared.Rent(qtLength + scoreLength + widenedLength + rowLength + partialLength);
            try
            {
                fixed (float* s = scratch)
                {
                    float* qt = s, scores = qt + qtLength, widened = scores + scoreLength, rowScratch = widened + widenedLength;
                    float* partials = rowScratch + rowLength, lses = partials + count * splits * group * d;
                    // qt[(h · dk + i) · 8 + r]: query element i of head kvHead · group + h for each row of the block
                    // (rows past the chunk and elements past d are +0; the former's scores are never used).
                    new Span<float>(qt, qtLength).Clear();
                    for (int r = 0; r < count; r++)
                        for (int h = 0; h < group; h++)
                            for (int i = 0; i < d; i++)
                                qt[(h * dk + i) * RowBlock + r] = q[(long)(r0 + r) * qStride + (kvHead * group + h) * d + i];
                    float scale = 1f / MathF.Sqrt(d);
                    for (int split = 0; split < splits; split++)
                    {
                        int start = split * size, tokens = Math.Min(size, longest - start);
                        float* k = Rows(keys + headBase + (long)start * d, tokens, d, dk, widened);
                        float* v = Rows(values + headBase + (long)start * d, tokens, d, d, widened + size * dk);
                        for (int h = 0; h < group; h++)
                        {
                            for (int j = 0; j < tokens; j++)
                                (Score8(k + (long)j * dk, qt + h * dk * RowBlock, chunks) * scale).Store(scores + j * RowBlock);
                            for (int r = 0; r < count; r++)
                            {
                                int length = first + r0 + r, n = Math.Min(size, length - start);
                                if (n <= 0) continue;
                                int head = kvHead * group + h;
                                float* o = output + ((long)(r0 + r) * heads + head) * d;
                                if (length <= size)
                                {
                                    SplitOfRow(scores + r, n, v, d, rowScratch, o, null);
                                    continue;
                                }
                                long at = (long)(r * splits + split) * group + h;
                                SplitOfRow(scores + r, n, v, d, rowScratch, partials + at * d, lses + at);
                            }
                        }
                    }
                    for (int r = 0; r < count; r++)
                    {
                        int length = first + r0 + r, rowSplits = (length + size - 1) / size;
                        if (rowSplits == 1) continue;
                        long at = (long)r * splits * group;
                        MergeStates(new ReadOnlySpan<float>(partials + at * d, rowSplits * group * d), new ReadOnlySpan<float>(lses + at, rowSplits * group),
                            new Span<float>(output + ((long)(r0 + r) * heads + kvHead * group) * d, group * d));
                    }
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(scratch);
            }
        }

        /// <summary>Row r's query heads of <paramref name="kvHead"/> as one decode attention (the blocks' fallback).</summary>
        private void DecodeRow(int r, int kvHead)
        {
            int d = headDim, cache = capacity * d;
            long headBase = (long)kvHead * cache;
            var kv = new KvView<T>(new ReadOnlySpan<T>(keys + headBase, cache), new ReadOnlySpan<T>(values + headBase, cache), 1, capacity, d, first + r);
            long at = (long)r * heads + kvHead * group;
            DecodeDense(new ReadOnlySpan<float>(q + (long)r * qStride + kvHead * group * d, group * d), kv, new Span<float>(output + at * d, group * d));
        }

        /// <summary>
        /// <paramref name="count"/> cache rows of d elements as floats <paramref name="stride"/> apart: F32 rows in place
        /// when the stride is d, others widened (exactly) into <paramref name="buffer"/>, each padded with +0 to the stride.
        /// </summary>
        private static float* Rows(T* rows, int count, int d, int stride, float* buffer)
        {
            if (typeof(T) == typeof(float) && stride == d) return (float*)rows;
            for (int j = 0; j < count; j++)
            {
                var row = new Span<float>(buffer + (long)j * stride, stride);
                Conversions.ToSingle(new ReadOnlySpan<T>(rows + (long)j * d, d), row.Slice(0, d));
                row.Slice(d).Clear();
            }
            return buffer;
        }

        /// <summary>
        /// Dot(k, q_r, ScoreLanes) for the eight rows r of <paramref name="qt"/> at once (chunk c of the head in lane
        /// c mod 4), the lanes folded as Reduction's four-lane dot folds them.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<float> Score8(float* k, float* qt, int chunks)
        {
            int lanes = Reduction.ScoreLanes;
            Vector256<float> l0 = Reduction.LaneOfEight(k, qt, 0, lanes, chunks), l1 = Reduction.LaneOfEight(k, qt, 1, lanes, chunks);
            Vector256<float> l2 = Reduction.LaneOfEight(k, qt, 2, lanes, chunks), l3 = Reduction.LaneOfEight(k, qt, 3, lanes, chunks);
            return (l0 + l2) + (l1 + l3);
        }

        /// <summary>
        /// One head and row over one split, from its scores (every eighth float from <paramref name="scores"/>) to the
        /// split's output, normalised within the split, and its log-sum-exp when <paramref name="lse"/> is not null:
        /// the rest of <see cref="Partial{T}"/>, in its order.
        /// </summary>
        private static void SplitOfRow(float* scores, int n, float* v, int d, float* scratch, float* output, float* lse)
        {
            int slots = Reduction.Slots, used = Math.Min(n, slots);
            var p = new Span<float>(scratch, n);
            var denominators = new Span<float>(scratch + n, slots);
            var accumulators = new Span<float>(scratch + n + slots, slots * d);
            float m = float.NegativeInfinity;
            for (int j = 0; j < n; j++)
            {
                p[j] = scores[j * RowBlock];
                m = MathF.Max(m, p[j]);
            }
            Softmax.ExpShifted(p, m, p);
            denominators.Slice(0, used).Clear();
            accumulators.Slice(0, used * d).Clear();
            for (int j = 0; j < n; j++)
            {
                int slot = j & (slots - 1);
                denominators[slot] += p[j];
                AccumulateScaled(p[j], new ReadOnlySpan<float>(v + (long)j * d, d), accumulators.Slice(slot * d, d));
            }
            float total = Reduction.FoldHalving(denominators.Slice(0, used));
            Reduction.FoldHalving(accumulators, used, d);
            for (int i = 0; i < d; i++) output[i] = accumulators[i] / total;
            if (lse != null) *lse = m + TidalMath.Log(total);
        }
    }
}
