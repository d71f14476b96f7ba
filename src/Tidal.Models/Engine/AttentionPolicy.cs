using Tidal.Core.Backends;
using Tidal.Core.Reference;

namespace Tidal.Models.Engine;

/// <summary>What one layer's attention does during a decode step.</summary>
public enum LayerAttention
{
    /// <summary>Dense attention over every cached position.</summary>
    Dense,
    /// <summary>Dense attention that also selects the top-k positions from its logits for the layers after it.</summary>
    DenseSelect,
    /// <summary>Sparse attention over the set the most recent <see cref="DenseSelect"/> layer chose (TidalDecode's position persistence).</summary>
    Reuse,
    /// <summary>Quest: score 16-token pages by their key bounds, attend to the top pages.</summary>
    Pages,
}

/// <summary>Which heads share one selected set.</summary>
public enum SelectionScope
{
    /// <summary>Every query head selects its own set (the paper).</summary>
    QueryHead,
    /// <summary>The query heads of a GQA group share one set, ranked by the group's log-summed probabilities.</summary>
    KvHead,
    /// <summary>All heads share one set.</summary>
    AllHeads,
}

/// <summary>
/// A sparse-attention policy: a per-layer schedule, the token budget k (which includes the current token, always
/// selected), the selection scope, forced sinks/window, and TidalDecode's cache correction interval.
/// Prefill is always dense; the schedule applies to decode steps.
/// </summary>
public sealed record AttentionPolicy
{
    /// <summary>Short name for reports ("full", "tidal", "quest", ...).</summary>
    public required string Name { get; init; }

    /// <summary>One entry per layer.</summary>
    public required IReadOnlyList<LayerAttention> Schedule { get; init; }

    /// <summary>Token budget k per head, the current token included (Quest: k/16 pages).</summary>
    public int TokenBudget { get; init; } = int.MaxValue;

    /// <summary>Which heads share a selected set.</summary>
    public SelectionScope Scope { get; init; } = SelectionScope.QueryHead;

    /// <summary>Positions always selected besides the current token.</summary>
    public ForcedTokens Forced { get; init; }

    /// <summary>
    /// Diagnostics: called after each <see cref="LayerAttention.DenseSelect"/> layer's attention with the layer, the
    /// backend tensor whose first heads × length elements are that layer's scaled logits [heads, length], and the length.
    /// The coherence evaluation reads every layer's scores through it. Null in normal decoding.
    /// </summary>
    public Action<int, ITensor, int>? LogitsObserver { get; init; }

    /// <summary>Every this many decode steps, recompute the K/V of the tokens decoded since the last correction with dense attention (0: never).</summary>
    public int CorrectionInterval { get; init; }

    /// <summary>Dense attention in every layer.</summary>
    public static AttentionPolicy Full(int layers) => new() { Name = "full", Schedule = Enumerable.Repeat(LayerAttention.Dense, layers).ToArray() };

    /// <summary>
    /// TidalDecode: layers 0–1 dense, layer 2 and the re-selection layer r dense with selection, every other layer
    /// sparse over the set last selected. r defaults to 40 % of the depth (13 of 32 for Llama-3-8B, as the paper picks).
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than 4 layers, r outside (2, layers), or budget ≤ 0.</exception>
    public static AttentionPolicy TidalDecode(int layers, int budget, int? reselectLayer = null, SelectionScope scope = SelectionScope.QueryHead,
        ForcedTokens forced = default, int correctionInterval = 0)
    {
        if (layers < 4) throw new ArgumentException($"TidalDecode needs at least 4 layers, got {layers}.", nameof(layers));
        int r = reselectLayer ?? DefaultReselectLayer(layers);
        if (r <= 2 || r >= layers) throw new ArgumentException($"the re-selection layer must lie in (2, {layers}), got {r}.", nameof(reselectLayer));
        CheckBudget(budget);
        if (correctionInterval < 0) throw new ArgumentException($"correctionInterval must be >= 0, got {correctionInterval}.", nameof(correctionInterval));
        var schedule = new LayerAttention[layers];
        for (int l = 0; l < layers; l++)
            schedule[l] = l < 2 ? LayerAttention.Dense : l == 2 || l == r ? LayerAttention.DenseSelect : LayerAttention.Reuse;
        return new() { Name = "tidal", Schedule = schedule, TokenBudget = budget, Scope = scope, Forced = forced, CorrectionInterval = correctionInterval };
    }

    /// <summary>The paper's choice, about 40 % of the depth: 13 of 32 layers, 5 of 12.</summary>
    public static int DefaultReselectLayer(int layers) => Math.Clamp((int)Math.Round(0.4 * layers), 3, layers - 1);

    /// <summary>Quest: layers 0–1 dense, every other layer attends to its top pages (budget/16 of them).</summary>
    public static AttentionPolicy Quest(int layers, int budget)
    {
        CheckBudget(budget);
        if (budget < Core.Reference.Quest.PageSize) throw new ArgumentException($"Quest needs a budget of at least one page ({Core.Reference.Quest.PageSize} tokens), got {budget}.", nameof(budget));
        return new()
        {
            Name = "quest",
            Schedule = Enumerable.Range(0, layers).Select(l => l < 2 ? LayerAttention.Dense : LayerAttention.Pages).ToArray(),
            TokenBudget = budget,
        };
    }

    /// <summary>Pages Quest attends to: budget / 16, at least one.</summary>
    public int PageBudget => Math.Max(1, TokenBudget / Core.Reference.Quest.PageSize);

    /// <summary>Checks the schedule against a model's depth and that every Reuse layer follows a selection layer.</summary>
    /// <exception cref="ArgumentException">The schedule does not fit.</exception>
    public void Validate(int layers)
    {
        if (Schedule.Count != layers) throw new ArgumentException($"policy '{Name}' schedules {Schedule.Count} layers but the model has {layers}.", nameof(layers));
        CheckBudget(TokenBudget);
        int firstSelect = Schedule.ToList().IndexOf(LayerAttention.DenseSelect);
        int firstReuse = Schedule.ToList().IndexOf(LayerAttention.Reuse);
        if (firstReuse >= 0 && (firstSelect < 0 || firstReuse < firstSelect))
            throw new ArgumentException($"policy '{Name}': layer {firstReuse} reuses a selection, but no earlier layer selects.", nameof(Schedule));
    }

    private static void CheckBudget(int budget)
    {
        if (budget <= 0) throw new ArgumentException($"the token budget must be > 0, got {budget}.", nameof(budget));
    }
}
