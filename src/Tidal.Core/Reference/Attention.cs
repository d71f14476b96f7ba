using System.Buffers;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Tidal.Core.Numerics;

namespace Tidal.Core.Reference;

/// <summary>
/// Decode attention for one new query token with GQA (query head h reads KV head h / groupSize): dense, over a
/// token range (one split of split-K), or gathered over an index set (TidalDecode's sparse layers, Quest's pages).
/// </summary>
/// <remarks>
/// Canonical arithmetic, per query head, over its token list t_0 … t_{n−1} (ascending positions for dense):
/// s_j = Dot(q, k_{t_j}) · (1/√d) with Dot in the feature-axis order over Reduction.ScoreLanes lanes; m = max s_j (exact); p_j = Exp(s_j − m);
/// D and O = Σ p_j·v_{t_j} accumulate in the token-axis order (slot j mod 32, fma, fold by halving);
/// output = O / D (division per element); lse = m + Log(D). An empty list gives output 0 and lse −∞.
/// Dense attention is this over all positions, so a gathered attention over every position equals it bit for bit.
/// </remarks>
public static partial class Attention
{
    private const long ParallelThreshold = 1 << 16;

    /// <summary>
    /// Entries per split of decode attention over <paramref name="count"/> entries, as every backend runs it
    /// (<see cref="DecodeDense{T}"/>, <see cref="DecodeSparse{T}"/>): about count/32 rounded down to a power of two,
    /// within [64, 1024], so a GPU gets enough independent splits to fill its SMs even for short lists, while each split
    /// stays long enough to amortise its fixed work (staging, maxima, folds) and its merge: on an H200, 1024 rather than
    /// 512 at most made 32K and 128K dense attention 11 % faster. The CPU splits identically so both backends produce
    /// the same bits.
    /// </summary>
    /// <remarks>Written with plain integer steps so that GPU kernels call this very method.</remarks>
    public static int DecodeSplitSize(int count)
    {
        int target = Math.Max(count / 32, 1) + 1, power = 1;
        while (power < target) power *= 2;
        return Math.Min(Math.Max(power / 2, 64), MaxDecodeSplitSize);
    }

    /// <summary>The largest split <see cref="DecodeSplitSize"/> returns.</summary>
    public const int MaxDecodeSplitSize = 1024;

    /// <summary>Dense attention over positions [0, kv.Length).</summary>
    /// <param name="q">Queries after RoPE, [nHeads, headDim].</param>
    /// <param name="kv">The layer's cache, with the current token already appended.</param>
    /// <param name="output">[nHeads, headDim].</param>
    /// <param name="logits">Empty, or [nHeads, kv.Length]: receives the scaled pre-softmax logits q·k/√d that
    /// TidalDecode's selection layers rank.</param>
    public static void Dense<T>(ReadOnlySpan<float> q, KvView<T> kv, Span<float> output, Span<float> logits = default) where T : unmanaged
        => Partial(q, kv, 0, kv.Length, output, default, logits);

    /// <summary>
    /// Decode attention over positions [0, kv.Length) as the backends run it: <see cref="Partial{T}"/> over splits of
    /// <see cref="DecodeSplitSize"/>(kv.Length) positions, then <see cref="MergeStates"/> (one split needs no merge).
    /// </summary>
    /// <param name="logits">Empty, or [nHeads, kv.Length].</param>
    public static void DecodeDense<T>(ReadOnlySpan<float> q, KvView<T> kv, Span<float> output, Span<float> logits = default) where T : unmanaged
    {
        int n = kv.Length, size = DecodeSplitSize(n);
        if (n <= size) { Partial(q, kv, 0, n, output, default, logits); return; }
        int heads = kv.GroupSize(q.Length) * kv.KvHeads, splits = (n + size - 1) / size;
        if (!logits.IsEmpty && logits.Length != (long)heads * n) throw new ArgumentException($"logits has {logits.Length} elements, expected [{heads}, {n}].", nameof(logits));
        var partials = new float[splits * output.Length];
        var lses = new float[splits * heads];
        var splitLogits = logits.IsEmpty ? null : new float[heads * size];
        for (int s = 0; s < splits; s++)
        {
            int start = s * size, count = Math.Min(size, n - start);
            Partial(q, kv, start, count, partials.AsSpan(s * output.Length, output.Length), lses.AsSpan(s * heads, heads),
                splitLogits is null ? default : splitLogits.AsSpan(0, heads * count));
            if (splitLogits is not null)
                for (int h = 0; h < heads; h++) splitLogits.AsSpan(h * count, count).CopyTo(logits.Slice(h * n + start, count));
        }
        MergeStates(partials, lses, output);
    }

    /// <summary>
    /// Gathered decode attention as the backends run it: indices [rows, k] with rows = nHeads (per query head),
    /// kvHeads (per KV head) or 1 (shared), split into <see cref="DecodeSplitSize"/>(k) entries per row, then merged.
    /// </summary>
    public static void DecodeSparse<T>(ReadOnlySpan<float> q, KvView<T> kv, ReadOnlySpan<int> indices, int rows, Span<float> output) where T : unmanaged
    {
        int heads = kv.GroupSize(q.Length) * kv.KvHeads;
        if (rows <= 0 || indices.Length % rows != 0) throw new ArgumentException($"indices ({indices.Length}) is not [{rows}, k].", nameof(indices));
        int k = indices.Length / rows, size = DecodeSplitSize(k), splits = Math.Max(1, (k + size - 1) / size);
        if (splits == 1) { Sparse(q, kv, indices, rows, k, heads, output, default); return; }
        var partials = new float[splits * output.Length];
        var lses = new float[splits * heads];
        for (int s = 0; s < splits; s++)
        {
            int start = s * size, count = Math.Min(size, k - start);
            var part = new int[rows * count];
            for (int r = 0; r < rows; r++) indices.Slice(r * k + start, count).CopyTo(part.AsSpan(r * count));
            Sparse(q, kv, part, rows, count, heads, partials.AsSpan(s * output.Length, output.Length), lses.AsSpan(s * heads, heads));
        }
        MergeStates(partials, lses, output);
    }

    private static void Sparse<T>(ReadOnlySpan<float> q, KvView<T> kv, ReadOnlySpan<int> indices, int rows, int k, int heads, Span<float> output, Span<float> lse) where T : unmanaged
    {
        if (rows == heads) SparsePerQueryHead(q, kv, indices, k, output, lse);
        else if (rows == kv.KvHeads) SparsePerKvHead(q, kv, indices, k, output, lse);
        else if (rows == 1) SparseShared(q, kv, indices, output, lse);
        else throw new ArgumentException($"indices must have {heads} (per query head), {kv.KvHeads} (per KV head) or 1 (shared) rows, got {rows}.", nameof(indices));
    }

    /// <summary>
    /// One split of split-K attention: positions [start, start + count), output normalised within the split and its
    /// log-sum-exp, ready for <see cref="MergeStates"/>.
    /// </summary>
    /// <param name="lse">Empty, or [nHeads].</param>
    /// <param name="logits">Empty, or [nHeads, count].</param>
    /// <exception cref="ArgumentException">Shapes disagree, or the range is outside [0, kv.Length).</exception>
    public static unsafe void Partial<T>(ReadOnlySpan<float> q, KvView<T> kv, int start, int count, Span<float> output,
        Span<float> lse = default, Span<float> logits = default) where T : unmanaged
    {
        int group = kv.GroupSize(q.Length);
        int heads = q.Length / kv.HeadDim;
        if (start < 0 || count < 0 || start > kv.Length - count)
            throw new ArgumentException($"tokens [{start}, {start + count}) lie outside the cache's {kv.Length} positions.", nameof(start));
        CheckOutputs(heads, kv.HeadDim, output, lse, logits, count);
        Run(q, kv, group, new TokenSet(start, count, null, 0), output, lse, logits);
    }

    /// <summary>Sparse attention where every query head has its own index set (the paper's per-head selection).</summary>
    /// <param name="indices">[nHeads, k] positions, each in [0, kv.Length).</param>
    /// <param name="k">Entries per head.</param>
    public static unsafe void SparsePerQueryHead<T>(ReadOnlySpan<float> q, KvView<T> kv, ReadOnlySpan<int> indices, int k,
        Span<float> output, Span<float> lse = default) where T : unmanaged
    {
        int group = kv.GroupSize(q.Length);
        int heads = q.Length / kv.HeadDim;
        CheckIndices(indices, heads, k, kv.Length);
        CheckOutputs(heads, kv.HeadDim, output, lse, default, k);
        fixed (int* p = indices)
            Run(q, kv, group, new TokenSet(0, k, p, k), output, lse, default);
    }

    /// <summary>Sparse attention where the query heads of a GQA group share their KV head's index set.</summary>
    /// <param name="indices">[kvHeads, k] positions, each in [0, kv.Length).</param>
    /// <param name="k">Entries per KV head.</param>
    public static unsafe void SparsePerKvHead<T>(ReadOnlySpan<float> q, KvView<T> kv, ReadOnlySpan<int> indices, int k,
        Span<float> output, Span<float> lse = default) where T : unmanaged
    {
        int group = kv.GroupSize(q.Length);
        int heads = q.Length / kv.HeadDim;
        CheckIndices(indices, kv.KvHeads, k, kv.Length);
        CheckOutputs(heads, kv.HeadDim, output, lse, default, k);
        fixed (int* p = indices)
            Run(q, kv, group, new TokenSet(0, k, p, k, perKvHead: true), output, lse, default);
    }

    /// <summary>Sparse attention where every query head shares one index set.</summary>
    /// <param name="indices">[k] positions, each in [0, kv.Length).</param>
    public static unsafe void SparseShared<T>(ReadOnlySpan<float> q, KvView<T> kv, ReadOnlySpan<int> indices,
        Span<float> output, Span<float> lse = default) where T : unmanaged
    {
        int group = kv.GroupSize(q.Length);
        int heads = q.Length / kv.HeadDim;
        CheckIndices(indices, 1, indices.Length, kv.Length);
        CheckOutputs(heads, kv.HeadDim, output, lse, default, indices.Length);
        fixed (int* p = indices)
            Run(q, kv, group, new TokenSet(0, indices.Length, p, 0), output, lse, default);
    }

    /// <summary>
    /// Merges split-K partial states: for each head, M = max lse_s, w_s = Exp(lse_s − M), output = Σ w_s·o_s / Σ w_s
    /// (both sums over s in the token-axis order, the first with fma, so a GPU merges with one lane per split slot),
    /// lse = M + Log(Σ w_s). All-empty splits give 0 and −∞.
    /// </summary>
    /// <param name="outputs">[splits, nHeads, headDim].</param>
    /// <param name="lses">[splits, nHeads].</param>
    /// <param name="output">[nHeads, headDim].</param>
    /// <param name="lse">Empty, or [nHeads].</param>
    public static void MergeStates(ReadOnlySpan<float> outputs, ReadOnlySpan<float> lses, Span<float> output, Span<float> lse = default)
    {
        if (output.IsEmpty) throw new ArgumentException("output is empty.", nameof(output));
        if (lses.IsEmpty) throw new ArgumentException("no splits to merge.", nameof(lses));
        if (outputs.Length % output.Length != 0)
            throw new ArgumentException($"outputs ({outputs.Length}) is not a whole number of outputs of {output.Length}.", nameof(outputs));
        int splits = outputs.Length / output.Length;
        if (lses.Length % splits != 0)
            throw new ArgumentException($"lses ({lses.Length}) is not [splits {splits}, nHeads].", nameof(lses));
        int heads = lses.Length / splits;
        if (output.Length % heads != 0)
            throw new ArgumentException($"output ({output.Length}) is not [nHeads {heads}, headDim].", nameof(output));
        if (!lse.IsEmpty && lse.Length != heads) throw new ArgumentException($"lse has {lse.Length} elements, expected {heads}.", nameof(lse));
        int d = output.Length / heads, used = Math.Min(splits, Reduction.Slots);
        var slots = new float[used * d];
        Span<float> totals = stackalloc float[Reduction.Slots];
        for (int h = 0; h < heads; h++)
        {
            float m = float.NegativeInfinity;
            for (int s = 0; s < splits; s++) m = MathF.Max(m, lses[s * heads + h]);
            Span<float> o = output.Slice(h * d, d);
            if (float.IsNegativeInfinity(m))
            {
                // Every split was empty: (−∞) − (−∞) would be NaN, so the merged state is the empty state.
                o.Clear();
                if (!lse.IsEmpty) lse[h] = m;
                continue;
            }
            Array.Clear(slots);
            totals.Clear();
            for (int s = 0; s < splits; s++)
            {
                int slot = s % Reduction.Slots;
                float w = TidalMath.Exp(lses[s * heads + h] - m);
                totals[slot] += w;
                ReadOnlySpan<float> os = outputs.Slice((s * heads + h) * d, d);
                Span<float> acc = slots.AsSpan(slot * d, d);
                for (int i = 0; i < d; i++) acc[i] = TidalMath.Fma(w, os[i], acc[i]);
            }
            float total = Reduction.FoldHalving(totals.Slice(0, used));
            Reduction.FoldHalving(slots, used, d);
            for (int i = 0; i < d; i++) o[i] = slots[i] / total;
            if (!lse.IsEmpty) lse[h] = m + TidalMath.Log(total);
        }
    }

    /// <summary>The tokens one head attends: a range, or rows of an index matrix (per query head, per KV head, or one
    /// row shared by all when the stride is 0).</summary>
    private readonly unsafe struct TokenSet(int start, int count, int* indices, int stride, bool perKvHead = false)
    {
        public readonly int Count = count;

        public int* Row(int head, int kvHead) => indices == null ? null : indices + (long)(perKvHead ? kvHead : head) * stride;

        public int Position(int* row, int j) => row == null ? start + j : row[j];

        /// <summary>Whether the query heads of a GQA group attend the same tokens (everything but per-query-head sets).</summary>
        public bool SharedByGroup => indices == null || perKvHead || stride == 0;
    }

    private static unsafe void Run<T>(ReadOnlySpan<float> q, KvView<T> kv, int group, TokenSet tokens,
        Span<float> output, Span<float> lse, Span<float> logits) where T : unmanaged
    {
        int heads = q.Length / kv.HeadDim;
        fixed (float* pq = q)
        fixed (T* pk = kv.Keys)
        fixed (T* pv = kv.Values)
        fixed (float* po = output)
        fixed (float* pl = lse)
        fixed (float* ps = logits)
        {
            var job = new HeadJob<T>(pq, pk, pv, po, pl, ps, kv.Capacity, kv.HeadDim, group, tokens);
            // A group that shares its tokens widens each K and V row once for all its heads; per-query-head sets cannot.
            int jobs = tokens.SharedByGroup ? kv.KvHeads : heads;
            Action<int> run = tokens.SharedByGroup ? job.RunGroup : job.Run;
            if ((long)heads * tokens.Count * kv.HeadDim < ParallelThreshold || Environment.ProcessorCount == 1)
                for (int i = 0; i < jobs; i++) run(i);
            else
                Parallel.For(0, jobs, run);
        }
    }

    private readonly unsafe struct HeadJob<T>(float* q, T* keys, T* values, float* output, float* lse, float* logits,
        int capacity, int headDim, int group, TokenSet tokens) where T : unmanaged
    {
        /// <summary>One query head over its own tokens.</summary>
        public void Run(int head) => Heads(head, 1);

        /// <summary>Every query head of KV head <paramref name="kvHead"/> over the tokens they share.</summary>
        public void RunGroup(int kvHead) => Heads(kvHead * group, group);

        /// <summary>Query heads [first, first + count) of one KV head over the same tokens: each K and V row is widened to
        /// floats once (exactly, so each head's arithmetic is the canonical one on the same values).</summary>
        private void Heads(int first, int count)
        {
            int d = headDim, n = tokens.Count, kvHead = first / group, slots = Reduction.Slots;
            int* row = tokens.Row(first, kvHead);
            long headBase = (long)kvHead * capacity * d;
            float scale = 1f / MathF.Sqrt(d);

            float[] scoresArray = ArrayPool<float>.Shared.Rent(Math.Max(count * n, 1));
            float[] slotsArray = ArrayPool<float>.Shared.Rent(count * slots * (d + 1) + d + count);
            try
            {
                // scores [count, n], then probabilities; per head its slots' denominators [slots] and accumulators [slots, d]; a widened row; maxima.
                Span<float> scores = scoresArray.AsSpan(0, count * n);
                Span<float> denominators = slotsArray.AsSpan(0, count * slots);
                Span<float> accumulators = slotsArray.AsSpan(count * slots, count * slots * d);
                Span<float> widened = slotsArray.AsSpan(count * slots * (d + 1), d);
                Span<float> maxima = slotsArray.AsSpan(count * slots * (d + 1) + d, count);
                maxima.Fill(float.NegativeInfinity);
                for (int j = 0; j < n; j++)
                {
                    ReadOnlySpan<float> k = Widen(keys + headBase + (long)tokens.Position(row, j) * d, d, widened);
                    for (int h = 0; h < count; h++)
                    {
                        float s = Reduction.Dot(k, new ReadOnlySpan<float>(q + (long)(first + h) * d, d), Reduction.ScoreLanes) * scale;
                        scores[h * n + j] = s;
                        maxima[h] = MathF.Max(maxima[h], s);
                    }
                }
                if (logits != null) scores.CopyTo(new Span<float>(logits + (long)first * n, count * n));
                for (int h = 0; h < count; h++) Softmax.ExpShifted(scores.Slice(h * n, n), maxima[h], scores.Slice(h * n, n)); // p_j

                int used = Math.Min(n, slots);
                denominators.Clear();
                accumulators.Clear();
                for (int j = 0; j < n; j++)
                {
                    ReadOnlySpan<float> v = Widen(values + headBase + (long)tokens.Position(row, j) * d, d, widened);
                    int slot = j & (slots - 1);
                    for (int h = 0; h < count; h++)
                    {
                        float p = scores[h * n + j];
                        denominators[h * slots + slot] += p;
                        AccumulateScaled(p, v, accumulators.Slice((h * slots + slot) * d, d));
                    }
                }
                for (int h = 0; h < count; h++)
                {
                    var oh = new Span<float>(output + (long)(first + h) * d, d);
                    float total = Reduction.FoldHalving(denominators.Slice(h * slots, used));
                    Span<float> sums = accumulators.Slice(h * slots * d, slots * d);
                    Reduction.FoldHalving(sums, used, d);
                    for (int i = 0; i < d; i++) oh[i] = n == 0 ? 0f : sums[i] / total;
                    if (lse != null) lse[first + h] = n == 0 ? float.NegativeInfinity : maxima[h] + TidalMath.Log(total);
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(scoresArray);
                ArrayPool<float>.Shared.Return(slotsArray);
            }
        }
    }

    /// <summary>A cache row as floats: F32 rows in place, others widened (exactly) into <paramref name="buffer"/>.</summary>
    private static unsafe ReadOnlySpan<float> Widen<T>(T* row, int d, Span<float> buffer) where T : unmanaged
    {
        var source = new ReadOnlySpan<T>(row, d);
        if (typeof(T) == typeof(float)) return MemoryMarshal.Cast<T, float>(source);
        Conversions.ToSingle(source, buffer);
        return buffer;
    }

    /// <summary>acc[i] = fma(p, v[i], acc[i]) (acc as long as v: the callers' slices of d floats).</summary>
    private static void AccumulateScaled(float p, ReadOnlySpan<float> v, Span<float> acc)
    {
        var pv = Vector256.Create(p);
        ref float rv = ref MemoryMarshal.GetReference(v);
        ref float ra = ref MemoryMarshal.GetReference(acc.Slice(0, v.Length));
        int i = 0;
        for (; i + 8 <= v.Length; i += 8)
            Vector256.FusedMultiplyAdd(pv, Vector256.LoadUnsafe(ref rv, (nuint)i), Vector256.LoadUnsafe(ref ra, (nuint)i)).StoreUnsafe(ref ra, (nuint)i);
        for (; i < v.Length; i++) acc[i] = TidalMath.Fma(p, v[i], acc[i]);
    }

    private static void CheckOutputs(int heads, int d, Span<float> output, Span<float> lse, Span<float> logits, int count)
    {
        if (output.Length != heads * d) throw new ArgumentException($"output has {output.Length} elements, expected [{heads}, {d}].", nameof(output));
        if (!lse.IsEmpty && lse.Length != heads) throw new ArgumentException($"lse has {lse.Length} elements, expected {heads}.", nameof(lse));
        if (!logits.IsEmpty && logits.Length != (long)heads * count)
            throw new ArgumentException($"logits has {logits.Length} elements, expected [{heads}, {count}].", nameof(logits));
    }

    private static void CheckIndices(ReadOnlySpan<int> indices, int rows, int k, int length)
    {
        if (k < 0) throw new ArgumentException($"k must be >= 0, got {k}.", nameof(k));
        if (k > length) throw new ArgumentException($"k = {k} exceeds the cache's {length} positions: an index set holds distinct positions.", nameof(k));
        if (indices.Length != (long)rows * k)
            throw new ArgumentException($"indices has {indices.Length} elements, expected [{rows}, {k}].", nameof(indices));
        for (int i = 0; i < indices.Length; i++)
            if ((uint)indices[i] >= (uint)length)
                throw new ArgumentException($"indices[{i}] = {indices[i]} is outside the cache's {length} positions.", nameof(indices));
    }
}
