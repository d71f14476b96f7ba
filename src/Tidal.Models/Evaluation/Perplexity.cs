using Tidal.Models.Engine;

namespace Tidal.Models.Evaluation;

/// <summary>
/// Perplexity as the TidalDecode paper measures it on PG-19: a prefix is prefilled densely, then the rest of the text is
/// fed one token at a time under the policy, so every prediction past the prefix comes from sparse decoding.
/// </summary>
public static class Perplexity
{
    /// <summary>exp of the mean negative log-likelihood of <c>tokens[prefix..]</c>, each predicted from the logits of the
    /// step before it (the last prefix token's logits predict the first scored token).</summary>
    /// <param name="progress">Receives the number of tokens scored so far.</param>
    /// <exception cref="ArgumentException">No token to score, or a prefix shorter than one token.</exception>
    public static double Evaluate(LlamaModel model, ReadOnlySpan<int> tokens, int prefix, AttentionPolicy policy,
        CancellationToken cancellationToken = default, IProgress<int>? progress = null)
    {
        if (prefix < 1 || prefix >= tokens.Length) throw new ArgumentException($"the prefix must hold 1 to {tokens.Length - 1} of the {tokens.Length} tokens, got {prefix}.", nameof(prefix));
        using Session session = model.CreateSession(tokens.Length);
        session.Prefill(tokens[..prefix]);
        double nll = 0;
        for (int i = prefix; i < tokens.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            nll += NegativeLogLikelihood(session.Logits, tokens[i]);
            if (i + 1 < tokens.Length) session.Step(tokens[i], policy);
            progress?.Report(i - prefix + 1);
        }
        return Math.Exp(nll / (tokens.Length - prefix));
    }

    /// <summary>−log softmax(logits)[target], in double.</summary>
    public static double NegativeLogLikelihood(ReadOnlySpan<float> logits, int target)
    {
        double max = double.NegativeInfinity;
        foreach (float x in logits) max = Math.Max(max, x);
        double sum = 0;
        foreach (float x in logits) sum += Math.Exp(x - max);
        return max + Math.Log(sum) - logits[target];
    }
}
