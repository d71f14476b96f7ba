using System.Buffers;
using Tidal.Core.Numerics;

namespace Tidal.Core.Reference;

/// <summary>Positions that every selection keeps regardless of score.</summary>
/// <param name="Sinks">The first <c>Sinks</c> positions (attention sinks).</param>
/// <param name="Window">The last <c>Window</c> positions (recent window).</param>
public readonly record struct ForcedTokens(int Sinks = 0, int Window = 0);

/// <summary>
/// Top-k token selection from attention logits, as TidalDecode's selection layers do it. The budget k includes the
/// current token (the last position), which is always selected, and any forced sinks and recent window; the rest go to
/// the highest scores, ties broken by the lower position (NaN ranks below −∞). Results are ascending positions.
/// </summary>
/// <remarks>
/// The selection is a radix select on order-preserving 32-bit keys (4 passes of 8 bits, most significant first), the
/// same algorithm a GPU kernel runs, so both pick identical sets: the threshold key T with fewer than k' keys above it
/// and at least k' at or above it; every key above T is taken, then keys equal to T in ascending position order.
/// </remarks>
public static class TopK
{
    /// <summary>
    /// Selects min(budget, n) positions from <paramref name="scores"/> (score of position t at t; n = scores.Length;
    /// the current token is n − 1) into the start of <paramref name="selected"/>, ascending. Returns the count.
    /// </summary>
    /// <exception cref="ArgumentException">Empty scores, budget ≤ 0, forced tokens exceeding the budget, or a short destination.</exception>
    public static int Select(ReadOnlySpan<float> scores, int budget, Span<int> selected, ForcedTokens forced = default)
    {
        int n = scores.Length;
        if (n == 0) throw new ArgumentException("scores is empty.", nameof(scores));
        if (budget <= 0) throw new ArgumentException($"budget must be > 0, got {budget}.", nameof(budget));
        if (forced.Sinks < 0 || forced.Window < 0) throw new ArgumentException($"sinks and window must be >= 0, got {forced}.", nameof(forced));
        int count = Math.Min(budget, n);
        if (selected.Length < count) throw new ArgumentException($"selected holds {selected.Length} but {count} positions are selected.", nameof(selected));
        if (count == n)
        {
            for (int t = 0; t < n; t++) selected[t] = t;
            return n;
        }

        Span<byte> taken = n <= 16384 ? stackalloc byte[n] : new byte[n];
        taken.Clear();
        int sinks = Math.Min(forced.Sinks, n), windowStart = Math.Max(0, n - Math.Max(forced.Window, 1));
        int forcedCount = 0;
        for (int t = 0; t < n; t++)
            if (t < sinks || t >= windowStart) { taken[t] = 1; forcedCount++; }
        if (forcedCount > count)
            throw new ArgumentException($"budget {budget} cannot hold the {forcedCount} forced positions (current token, {forced.Sinks} sinks, window {forced.Window}).", nameof(budget));

        SelectLargest(scores, taken, count - forcedCount);
        int written = 0;
        for (int t = 0; t < n; t++) if (taken[t] != 0) selected[written++] = t;
        return written;
    }

    /// <summary>Per query head: logits [nHeads, n] → indices [nHeads, min(budget, n)].</summary>
    public static void SelectPerQueryHead(ReadOnlySpan<float> logits, int heads, int budget, Span<int> indices, ForcedTokens forced = default)
    {
        int n = RowLength(logits, heads);
        int k = Math.Min(budget, n);
        if (indices.Length != heads * k) throw new ArgumentException($"indices has {indices.Length} elements, expected [{heads}, {k}].", nameof(indices));
        for (int h = 0; h < heads; h++)
            Select(logits.Slice(h * n, n), budget, indices.Slice(h * k, k), forced);
    }

    /// <summary>
    /// Per KV head: the query heads of each GQA group are aggregated with <see cref="AggregateGroup"/>, then one set is
    /// selected per group. logits [nHeads, n] → indices [kvHeads, min(budget, n)]. With kvHeads = 1 every head shares one set.
    /// </summary>
    public static void SelectPerKvHead(ReadOnlySpan<float> logits, int heads, int kvHeads, int budget, Span<int> indices, ForcedTokens forced = default)
    {
        int n = RowLength(logits, heads);
        if (kvHeads <= 0 || heads % kvHeads != 0)
            throw new ArgumentException($"{heads} query heads cannot be grouped into {kvHeads} KV heads.", nameof(kvHeads));
        int group = heads / kvHeads, k = Math.Min(budget, n);
        if (indices.Length != kvHeads * k) throw new ArgumentException($"indices has {indices.Length} elements, expected [{kvHeads}, {k}].", nameof(indices));
        float[] aggregated = new float[n];
        for (int g = 0; g < kvHeads; g++)
        {
            AggregateGroup(logits.Slice(g * group * n, group * n), group, aggregated);
            Select(aggregated, budget, indices.Slice(g * k, k), forced);
        }
    }

    /// <summary>
    /// Group score of each token: log Σ_h p_h(t), the log of the attention probability mass the group's heads give it,
    /// computed in log space as LSE_h(s_h(t) − LSE_t'(s_h(t'))) so that sharp heads, whose fp32 probabilities underflow
    /// to exact zeros, still rank every token. Summing probabilities (rather than logits) ranks a token high when any
    /// head attends to it strongly, which is what the group's sparse attention must not miss. The per-head LSE uses
    /// the token-axis order; the sum over heads runs in head order.
    /// </summary>
    /// <param name="logits">[group, n].</param>
    /// <param name="group">Heads in the group.</param>
    /// <param name="aggregated">[n].</param>
    public static void AggregateGroup(ReadOnlySpan<float> logits, int group, Span<float> aggregated)
    {
        int n = RowLength(logits, group);
        if (aggregated.Length != n) throw new ArgumentException($"aggregated has {aggregated.Length} elements, expected {n}.", nameof(aggregated));
        Span<float> lse = stackalloc float[group];
        for (int h = 0; h < group; h++) lse[h] = Softmax.LogSumExpTokens(logits.Slice(h * n, n));
        for (int t = 0; t < n; t++)
        {
            float m = float.NegativeInfinity;
            for (int h = 0; h < group; h++) m = MathF.Max(m, logits[h * n + t] - lse[h]);
            if (float.IsNegativeInfinity(m)) { aggregated[t] = m; continue; }
            float sum = 0f;
            for (int h = 0; h < group; h++) sum += TidalMath.Exp(logits[h * n + t] - lse[h] - m);
            aggregated[t] = m + TidalMath.Log(sum);
        }
    }

    /// <summary>Order-preserving key: a larger float gives a larger key; −0 and +0 share one key (equal scores tie);
    /// NaN gives 0, below −∞.</summary>
    /// <remarks>Written with selects rather than branches (a score's sign is as good as random), as the kernels'
    /// KernelMath.OrderedKey is.</remarks>
    public static uint OrderedKey(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value), magnitude = bits & 0x7FFF_FFFFu;
        uint key = bits ^ ((uint)((int)bits >> 31) | 0x8000_0000u);
        key = magnitude == 0 ? 0x8000_0000u : key;
        return magnitude > 0x7F80_0000u ? 0u : key;
    }

    /// <summary>Marks the <paramref name="k"/> best unmarked positions in <paramref name="taken"/> (radix select, see the
    /// class remarks). The keys are computed once, in the first pass; each pass then keeps, in position order, only the
    /// keys that share the threshold's digits so far (marking those above them), so later passes visit few keys.</summary>
    private static void SelectLargest(ReadOnlySpan<float> scores, Span<byte> taken, int k)
    {
        if (k == 0) return;
        int n = scores.Length;
        ulong[]? rented = n > 2048 ? ArrayPool<ulong>.Shared.Rent(n) : null;
        // A candidate is its key (high 32 bits) and position (low 32 bits).
        Span<ulong> candidates = rented ?? stackalloc ulong[n];
        Span<int> histogram = stackalloc int[257];
        histogram.Clear();
        int count = 0;
        for (int t = 0; t < n; t++)
        {
            if (taken[t] != 0) continue;
            uint key = OrderedKey(scores[t]);
            histogram[(int)(key >> 24)]++;
            candidates[count++] = ((ulong)key << 32) | (uint)t;
        }
        int remaining = k, digit;
        for (int shift = 24; ; shift -= 8)
        {
            digit = 255;
            for (; digit > 0 && histogram[digit] < remaining; digit--) remaining -= histogram[digit];
            if (shift == 0) break;
            histogram.Clear();
            int kept = 0;
            for (int i = 0; i < count; i++)
            {
                // Without branches (which digit a key has is as good as random): a key above the digit marks its
                // position, one with it stays (its next digit counted; bin 256 absorbs the others' counts).
                ulong c = candidates[i];
                int d = (int)(c >> (32 + shift)) & 0xFF;
                bool same = d == digit;
                taken[(int)(uint)c] |= (byte)(d > digit ? 2 : 0);
                candidates[kept] = c;
                kept += same ? 1 : 0;
                histogram[same ? (int)(c >> (24 + shift)) & 0xFF : 256]++;
            }
            count = kept;
        }
        // The candidates share the threshold's first 24 bits; by their last 8, those above it are taken, and `remaining`
        // of those equal to it, the lowest positions first (the candidates are in position order).
        for (int i = 0; i < count; i++)
        {
            ulong c = candidates[i];
            int d = (int)(c >> 32) & 0xFF;
            if (d > digit || (d == digit && remaining-- > 0)) taken[(int)(uint)c] = 2;
        }
        if (rented is not null) ArrayPool<ulong>.Shared.Return(rented);
    }

    private static int RowLength(ReadOnlySpan<float> logits, int heads)
    {
        if (heads <= 0) throw new ArgumentException($"heads must be > 0, got {heads}.", nameof(heads));
        if (logits.IsEmpty || logits.Length % heads != 0)
            throw new ArgumentException($"logits has {logits.Length} elements, not [{heads}, n] with n > 0.", nameof(logits));
        return logits.Length / heads;
    }
}
