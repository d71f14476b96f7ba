namespace Tidal.Models.Engine;

/// <summary>How to generate: length, sampling, stop conditions and the attention policy. Plain data.</summary>
public sealed record GenerationOptions
{
    /// <summary>Most new tokens to generate.</summary>
    public int MaxNewTokens { get; init; } = 128;

    /// <summary>0 for greedy decoding; otherwise logits are divided by it before sampling.</summary>
    public float Temperature { get; init; }

    /// <summary>Nucleus sampling: sample from the smallest set of most probable tokens whose probability reaches TopP (1 = all; tokens tied at the boundary all stay). See Tidal.Core.Reference.Sampling.</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Seed of the sampler (null: a random seed).</summary>
    public int? Seed { get; init; }

    /// <summary>Generation stops before any of these strings would be emitted.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>Stop at the model's end-of-sequence tokens.</summary>
    public bool StopAtEndOfSequence { get; init; } = true;

    /// <summary>The attention policy for decode steps (null: dense attention in every layer).</summary>
    public AttentionPolicy? Policy { get; init; }

    /// <summary>Checks the values.</summary>
    /// <exception cref="ArgumentException">A value is out of range.</exception>
    public void Validate()
    {
        if (MaxNewTokens < 0) throw new ArgumentException($"MaxNewTokens must be >= 0, got {MaxNewTokens}.", nameof(MaxNewTokens));
        if (!(Temperature >= 0) || float.IsInfinity(Temperature)) throw new ArgumentException($"Temperature must be finite and >= 0, got {Temperature}.", nameof(Temperature));
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"TopP must be in (0, 1], got {TopP}.", nameof(TopP));
        if (StopStrings.Any(string.IsNullOrEmpty)) throw new ArgumentException("stop strings must not be empty.", nameof(StopStrings));
    }
}

/// <summary>One generated token and the text it completes (empty while a multi-byte character or a possible stop string is held back).</summary>
/// <param name="Id">The token id.</param>
/// <param name="Text">Text released with this token.</param>
public readonly record struct GeneratedToken(int Id, string Text);
