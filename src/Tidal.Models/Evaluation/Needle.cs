using Tidal.Models.Engine;
using Tidal.Models.Tokenization;

namespace Tidal.Models.Evaluation;

/// <summary>How the question of a needle trial reaches the model.</summary>
public enum QuestionMode
{
    /// <summary>Haystack and question prefilled densely; only the answer is decoded under the policy (the paper's harness).</summary>
    Prefilled,
    /// <summary>Haystack prefilled; the question is decoded token by token under the policy, so the retrieval itself
    /// depends on sparse attention.</summary>
    Decoded,
}

/// <summary>One needle trial: a pass key hidden at a depth of a haystack, then asked for.</summary>
/// <param name="Haystack">Text before the question, the needle inside it.</param>
/// <param name="Question">The question, starting with the blank line that separates it from the haystack.</param>
/// <param name="Answer">The expected continuation: " " + the digits + ".".</param>
public sealed record NeedleTrial(string Haystack, string Question, string Answer);

/// <summary>
/// Needle-in-a-haystack retrieval in tidal-tiny's pass-key format (its MODEL_CARD.md): "The pass key for KEY is V."
/// placed between sentences of held-out text at a depth, then "What is the pass key for KEY? The pass key for KEY is";
/// correct when greedy decoding, teacher-forced, reproduces every answer token.
/// </summary>
public static class Needle
{
    private static readonly string[] Keys = ["ORION", "LYRA", "VEGA", "ALTAIR", "DENEB", "RIGEL", "SIRIUS", "CASTOR"];

    /// <summary>Builds a trial of about <paramref name="contextTokens"/> tokens with the needle at <paramref name="depth"/> (0–1) of the haystack.</summary>
    public static NeedleTrial Build(Tokenizer tokenizer, string heldout, int contextTokens, double depth, Random random)
    {
        if (depth is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(depth), depth, "depth must lie in [0, 1].");
        string key = Keys[random.Next(Keys.Length)];
        string value = random.Next(10000, 100000).ToString();
        string question = $"\n\nWhat is the pass key for {key}? The pass key for {key} is";
        int budget = contextTokens - tokenizer.Encode(question, addSpecialTokens: false).Length - 24;
        string[] sentences = heldout.Split(". ", StringSplitOptions.RemoveEmptyEntries);
        var haystack = new List<string>();
        int start = random.Next(sentences.Length), used = 0;
        for (int i = start; used < budget; i = (i + 1) % sentences.Length)
        {
            string sentence = sentences[i].Replace('\n', ' ').Trim() + ".";
            if (sentence.Length < 2) continue;
            used += tokenizer.Encode(" " + sentence, addSpecialTokens: false).Length;
            if (used < budget) haystack.Add(sentence);
        }
        haystack.Insert((int)Math.Round(depth * haystack.Count), $"The pass key for {key} is {value}.");
        return new NeedleTrial(string.Join(' ', haystack), question, $" {value}.");
    }

    /// <summary>
    /// Runs one trial under every policy in every question mode: <c>[policy, mode]</c> is true when every answer token
    /// is the greedy choice. The haystack is prefilled once and each run continues from it (<see cref="Session.Rewind"/>),
    /// exactly as if it had been prefilled for that run alone.
    /// </summary>
    public static bool[,] Run(LlamaModel model, NeedleTrial trial, IReadOnlyList<AttentionPolicy> policies, IReadOnlyList<QuestionMode> modes,
        CancellationToken cancellationToken = default)
    {
        Tokenizer tokenizer = model.Tokenizer ?? throw new InvalidOperationException("the model has no tokenizer.");
        int[] haystack = tokenizer.Encode(trial.Haystack, addSpecialTokens: true);
        int[] question = tokenizer.Encode(trial.Question, addSpecialTokens: false);
        int[] answer = tokenizer.Encode(trial.Answer, addSpecialTokens: false);
        using Session session = model.CreateSession(haystack.Length + question.Length + answer.Length);
        session.Prefill(haystack);
        var correct = new bool[policies.Count, modes.Count];
        for (int p = 0; p < policies.Count; p++)
            for (int m = 0; m < modes.Count; m++)
            {
                if (p + m > 0) session.Rewind(haystack.Length);
                correct[p, m] = Answer(session, question, answer, policies[p], modes[m], cancellationToken);
            }
        return correct;
    }

    private static bool Answer(Session session, int[] question, int[] answer, AttentionPolicy policy, QuestionMode mode, CancellationToken cancellationToken)
    {
        if (mode == QuestionMode.Prefilled) session.Prefill(question);
        else
            foreach (int token in question)
            {
                cancellationToken.ThrowIfCancellationRequested();
                session.Step(token, policy);
            }
        for (int i = 0; i < answer.Length; i++)
        {
            if (session.Sample() != answer[i]) return false;
            if (i + 1 < answer.Length) session.Step(answer[i], policy);
        }
        return true;
    }
}
