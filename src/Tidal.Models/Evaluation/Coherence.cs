using Tidal.Core.Backends;
using Tidal.Core.Reference;
using Tidal.Models.Engine;

namespace Tidal.Models.Evaluation;

/// <summary>What <see cref="Coherence.Measure"/> found.</summary>
/// <param name="HeadOverlap">[head, layer, layer]: the mean share (over the measured steps) of one layer's top-k set
/// for that query head that another layer's set for the same head also holds.</param>
/// <param name="CapturedMass">[r]: for TidalDecode with re-selection layer r, the mean dense attention probability
/// that the persisted set (layer 2's before r, layer r's after) captures in the sparse layers; NaN where r is not a
/// valid re-selection layer.</param>
/// <param name="RecommendedLayer">The r with the largest captured mass.</param>
public sealed record CoherenceReport(double[,,] HeadOverlap, double[] CapturedMass, int RecommendedLayer)
{
    /// <summary>The first valid re-selection layer: layer 2 makes the first selection.</summary>
    public const int FirstCandidate = 3;

    /// <summary>[layer, layer]: <see cref="HeadOverlap"/> averaged over query heads.</summary>
    public double[,] Overlap { get; } = MeanOverHeads(HeadOverlap);

    /// <summary>The captured mass at <see cref="RecommendedLayer"/>.</summary>
    public double BestMass => CapturedMass[RecommendedLayer];

    private static double[,] MeanOverHeads(double[,,] perHead)
    {
        int heads = perHead.GetLength(0), layers = perHead.GetLength(1);
        var mean = new double[layers, layers];
        for (int h = 0; h < heads; h++)
            for (int a = 0; a < layers; a++)
                for (int b = 0; b < layers; b++) mean[a, b] += perHead[h, a, b] / heads;
        return mean;
    }
}

/// <summary>
/// The TidalDecode paper's core observation, measured on a model: do consecutive layers attend to the same tokens?
/// Text is prefilled densely, then decoded for a few steps with dense attention in every layer while each layer's
/// logits are read; per step and query head each layer's top-k set is compared with every other layer's, and each
/// candidate re-selection layer r is scored by the attention mass its persisted sets capture.
/// </summary>
public static class Coherence
{
    /// <summary>Measures over <c>tokens[prefix..]</c> decoded one at a time with dense attention.</summary>
    /// <exception cref="ArgumentException">Fewer than 4 layers, no step to measure, or a budget ≤ 0.</exception>
    public static CoherenceReport Measure(LlamaModel model, ReadOnlySpan<int> tokens, int prefix, int budget, CancellationToken cancellationToken = default)
    {
        int layers = model.Config.Layers, heads = model.Config.Heads;
        if (layers < 4) throw new ArgumentException($"coherence needs at least 4 layers, got {layers}.", nameof(model));
        if (prefix < 1 || prefix >= tokens.Length) throw new ArgumentException($"the prefix must hold 1 to {tokens.Length - 1} of the {tokens.Length} tokens, got {prefix}.", nameof(prefix));
        if (budget <= 0) throw new ArgumentException($"budget must be > 0, got {budget}.", nameof(budget));
        IBackend backend = model.Weights.Backend;
        using Session session = model.CreateSession(tokens.Length);
        session.Prefill(tokens[..prefix]);
        var logits = new float[layers][];
        var policy = new AttentionPolicy
        {
            Name = "coherence", Schedule = Enumerable.Repeat(LayerAttention.DenseSelect, layers).ToArray(), TokenBudget = budget,
            LogitsObserver = (layer, tensor, length) =>
            {
                var all = new float[tensor.Shape.ElementCount];
                backend.Download<float>(tensor, all);
                logits[layer] = all[..(heads * length)];
            },
        };
        var overlap = new double[heads, layers, layers];
        var mass = new double[layers];
        int steps = 0;
        for (int i = prefix; i < tokens.Length; i++, steps++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            session.Step(tokens[i], policy);
            int n = i + 1, k = Math.Min(budget, n);
            var sets = new HashSet<int>[layers, heads];
            var probabilities = new double[layers][];
            for (int l = 0; l < layers; l++)
            {
                var indices = new int[heads * k];
                TopK.SelectPerQueryHead(logits[l], heads, budget, indices);
                for (int h = 0; h < heads; h++) sets[l, h] = [.. indices.AsSpan(h * k, k)];
                probabilities[l] = Probabilities(logits[l], heads, n);
            }
            for (int a = 0; a < layers; a++)
                for (int b = 0; b < layers; b++)
                    for (int h = 0; h < heads; h++) overlap[h, a, b] += sets[a, h].Count(t => sets[b, h].Contains(t)) / (double)k;
            for (int r = CoherenceReport.FirstCandidate; r < layers; r++)
            {
                double captured = 0;
                int sparse = 0;
                for (int l = 3; l < layers; l++)
                {
                    if (l == r) continue;
                    int source = l < r ? 2 : r;
                    for (int h = 0; h < heads; h++) foreach (int t in sets[source, h]) captured += probabilities[l][h * n + t] / heads;
                    sparse++;
                }
                mass[r] += sparse > 0 ? captured / sparse : 1;
            }
        }
        for (int h = 0; h < heads; h++) for (int a = 0; a < layers; a++) for (int b = 0; b < layers; b++) overlap[h, a, b] /= steps;
        double[] capturedMass = mass.Select((m, r) => r < CoherenceReport.FirstCandidate ? double.NaN : m / steps).ToArray();
        int best = CoherenceReport.FirstCandidate;
        for (int r = best + 1; r < layers; r++) if (capturedMass[r] > capturedMass[best]) best = r;
        return new CoherenceReport(overlap, capturedMass, best);
    }

    /// <summary>Per-head softmax of logits [heads, n], in double.</summary>
    private static double[] Probabilities(float[] logits, int heads, int n)
    {
        var p = new double[heads * n];
        for (int h = 0; h < heads; h++)
        {
            double max = double.NegativeInfinity, sum = 0;
            for (int t = 0; t < n; t++) max = Math.Max(max, logits[h * n + t]);
            for (int t = 0; t < n; t++) sum += p[h * n + t] = Math.Exp(logits[h * n + t] - max);
            for (int t = 0; t < n; t++) p[h * n + t] /= sum;
        }
        return p;
    }
}
