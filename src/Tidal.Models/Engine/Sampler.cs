using Tidal.Core.Reference;

namespace Tidal.Models.Engine;

/// <summary>Picks the next token from logits: argmax when greedy, else temperature + top-p sampling with a seeded generator.</summary>
internal sealed class Sampler
{
    private readonly GenerationOptions _options;
    private readonly Random _random;
    private float[] _probabilities = [];
    private int[] _order = [];

    public Sampler(GenerationOptions options)
    {
        _options = options;
        _random = options.Seed is int seed ? new Random(seed) : new Random();
    }

    public int Next(ReadOnlySpan<float> logits)
    {
        if (_options.Temperature == 0) return Elementwise.Argmax(logits);
        if (_probabilities.Length != logits.Length)
        {
            _probabilities = new float[logits.Length];
            _order = new int[logits.Length];
        }
        for (int i = 0; i < logits.Length; i++) _probabilities[i] = logits[i] / _options.Temperature;
        Softmax.Apply(_probabilities, _probabilities);
        for (int i = 0; i < _order.Length; i++) _order[i] = i;
        // Highest probability first; ties by lower id, so a seed always gives the same draw.
        Array.Sort(_order, (a, b) => _probabilities[b] != _probabilities[a] ? _probabilities[b].CompareTo(_probabilities[a]) : a.CompareTo(b));
        double cumulative = 0, mass = 0;
        int keep = 0;
        while (keep < _order.Length && (keep == 0 || mass < _options.TopP)) mass += _probabilities[_order[keep++]];
        double u = _random.NextDouble() * mass;
        for (int i = 0; i < keep; i++)
        {
            cumulative += _probabilities[_order[i]];
            if (u < cumulative) return _order[i];
        }
        return _order[keep - 1];
    }
}
