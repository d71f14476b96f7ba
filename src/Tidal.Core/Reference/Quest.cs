using Tidal.Core.Numerics;

namespace Tidal.Core.Reference;

/// <summary>
/// Quest (arXiv 2406.10774): per page of 16 tokens, the channel-wise min and max of the keys; a query scores a page by
/// the upper bound Σ_i max(q_i·max_i, q_i·min_i) of q·k over the page; attention then reads the top pages only.
/// </summary>
public static class Quest
{
    /// <summary>Tokens per page.</summary>
    public const int PageSize = 16;

    /// <summary>Pages needed for <paramref name="length"/> tokens.</summary>
    public static int PageCount(int length) => (length + PageSize - 1) / PageSize;

    /// <summary>
    /// Folds the key just appended at <paramref name="position"/> into its page's bounds (the first token of a page
    /// resets them). <paramref name="key"/> is [kvHeads, d]; <paramref name="min"/> and <paramref name="max"/> are
    /// [kvHeads, maxPages, d].
    /// </summary>
    /// <exception cref="ArgumentException">Shapes disagree or the position's page is outside the bounds.</exception>
    public static void UpdatePageBounds<T>(ReadOnlySpan<T> key, int position, int kvHeads, Span<float> min, Span<float> max) where T : unmanaged
    {
        if (kvHeads <= 0 || key.Length % kvHeads != 0) throw new ArgumentException($"key ({key.Length}) is not [kvHeads {kvHeads}, d].", nameof(key));
        int d = key.Length / kvHeads;
        int maxPages = CheckBounds(min, max, kvHeads, d);
        int page = position / PageSize;
        if (position < 0 || page >= maxPages) throw new ArgumentException($"position {position} is outside {maxPages} pages.", nameof(position));
        bool first = position % PageSize == 0;
        for (int h = 0; h < kvHeads; h++)
        {
            Span<float> lo = min.Slice((h * maxPages + page) * d, d), hi = max.Slice((h * maxPages + page) * d, d);
            for (int i = 0; i < d; i++)
            {
                float k = Conversions.ToSingle(key[h * d + i]);
                lo[i] = first ? k : MathF.Min(lo[i], k);
                hi[i] = first ? k : MathF.Max(hi[i], k);
            }
        }
    }

    /// <summary>Rebuilds all page bounds of positions [0, kv.Length) (after prefill or cache correction).</summary>
    public static void BuildPageBounds<T>(KvView<T> kv, Span<float> min, Span<float> max) where T : unmanaged
    {
        Span<T> key = new T[kv.KvHeads * kv.HeadDim];
        for (int p = 0; p < kv.Length; p++)
        {
            for (int h = 0; h < kv.KvHeads; h++) kv.Key(h, p).CopyTo(key.Slice(h * kv.HeadDim));
            UpdatePageBounds<T>(key, p, kv.KvHeads, min, max);
        }
    }

    /// <summary>
    /// Upper bound of (q·k)/√d over a page: Σ_i max(q_i·max_i, q_i·min_i) in the feature-axis order, times 1/√d.
    /// Each product is rounded on its own (no fma), matching a kernel's mul.rn.
    /// </summary>
    public static float PageBound(ReadOnlySpan<float> q, ReadOnlySpan<float> min, ReadOnlySpan<float> max)
    {
        if (min.Length != q.Length || max.Length != q.Length) throw new ArgumentException("q, min and max must have one length.", nameof(q));
        Span<float> terms = q.Length <= 1024 ? stackalloc float[q.Length] : new float[q.Length];
        for (int i = 0; i < q.Length; i++) terms[i] = MathF.Max(q[i] * max[i], q[i] * min[i]);
        return Reduction.Sum(terms) * (1f / MathF.Sqrt(q.Length));
    }

    /// <summary>
    /// Scores pages [0, PageCount(length)) for every query head: q [nHeads, d] against its KV head's bounds →
    /// scores [nHeads, pages].
    /// </summary>
    public static void ScorePages(ReadOnlySpan<float> q, int heads, int kvHeads, ReadOnlySpan<float> min, ReadOnlySpan<float> max, int length, Span<float> scores)
    {
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0) throw new ArgumentException($"{heads} query heads cannot share {kvHeads} KV heads.", nameof(kvHeads));
        if (q.Length % heads != 0) throw new ArgumentException($"q ({q.Length}) is not [{heads}, d].", nameof(q));
        int d = q.Length / heads, pages = PageCount(length), maxPages = CheckBounds(min, max, kvHeads, d);
        if (pages > maxPages) throw new ArgumentException($"{length} tokens need {pages} pages but the bounds hold {maxPages}.", nameof(length));
        if (scores.Length != heads * pages) throw new ArgumentException($"scores has {scores.Length} elements, expected [{heads}, {pages}].", nameof(scores));
        int group = heads / kvHeads;
        for (int h = 0; h < heads; h++)
            for (int p = 0; p < pages; p++)
            {
                int offset = ((h / group) * maxPages + p) * d;
                scores[h * pages + p] = PageBound(q.Slice(h * d, d), min.Slice(offset, d), max.Slice(offset, d));
            }
    }

    /// <summary>
    /// Tokens that <see cref="SelectTokens"/> returns for <paramref name="length"/> positions and
    /// <paramref name="pageBudget"/> pages: every selected page is full except the current (last) one.
    /// </summary>
    public static int SelectedTokenCount(int length, int pageBudget)
    {
        int pages = PageCount(length);
        return pageBudget >= pages ? length : (pageBudget - 1) * PageSize + (length - (pages - 1) * PageSize);
    }

    /// <summary>
    /// Picks the top <paramref name="pageBudget"/> pages of one head by score (the current, last page always in;
    /// ties to the lower page) and expands them to ascending token positions below <paramref name="length"/>.
    /// Returns the token count.
    /// </summary>
    public static int SelectTokens(ReadOnlySpan<float> pageScores, int pageBudget, int length, Span<int> tokens)
    {
        if (pageScores.Length != PageCount(length)) throw new ArgumentException($"{pageScores.Length} page scores for {length} tokens.", nameof(pageScores));
        Span<int> pages = stackalloc int[Math.Min(pageBudget, pageScores.Length)];
        int count = TopK.Select(pageScores, pageBudget, pages, new ForcedTokens(Window: 1));
        int written = 0;
        for (int i = 0; i < count; i++)
            for (int t = pages[i] * PageSize; t < Math.Min(length, (pages[i] + 1) * PageSize); t++)
            {
                if (written == tokens.Length) throw new ArgumentException($"tokens holds {tokens.Length}, too few for {count} pages.", nameof(tokens));
                tokens[written++] = t;
            }
        return written;
    }

    private static int CheckBounds(ReadOnlySpan<float> min, ReadOnlySpan<float> max, int kvHeads, int d)
    {
        if (min.Length != max.Length || min.Length == 0 || min.Length % (kvHeads * d) != 0)
            throw new ArgumentException($"min ({min.Length}) and max ({max.Length}) must both be [kvHeads {kvHeads}, maxPages, {d}].", nameof(min));
        return min.Length / (kvHeads * d);
    }
}
