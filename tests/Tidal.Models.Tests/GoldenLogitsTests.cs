using Tidal.Core.Backends;
using Tidal.Models.Engine;
using Xunit.Abstractions;

namespace Tidal.Models.Tests;

/// <summary>The CPU engine against what Hugging Face transformers computes from tidal-tiny (golden.json).</summary>
public class GoldenLogitsTests(ITestOutputHelper output)
{
    [TinyModelFact]
    public void FullPolicy_MatchesGoldenLogits_AndGreedyContinuations()
    {
        using var model = LlamaModel.Load(TinyModel.Directory!, new CpuBackend());
        var full = AttentionPolicy.Full(model.Config.Layers);
        foreach (var prompt in TinyModel.Golden())
        {
            using Session session = model.CreateSession(2048);
            session.Prefill(prompt.Ids);
            // Golden logits are rounded to 6 significant digits (|logit| < 100: ≤ 5e-5) and were computed by PyTorch in
            // fp32 with another summation order; 1e-3 (the bound) leaves room for both.
            float maxDiff = 0;
            for (int i = 0; i < prompt.LastLogits.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(session.Logits[i] - prompt.LastLogits[i]));
            output.WriteLine($"{prompt.Name} ({prompt.Ids.Length} tokens): max |logit - golden| = {maxDiff:E2}");
            Assert.True(maxDiff <= 1e-3f, $"{prompt.Name}: max |logit diff| = {maxDiff}");

            var greedy = new List<int>();
            for (int i = 0; i < prompt.Greedy.Length; i++)
            {
                int next = Tidal.Core.Reference.Elementwise.Argmax(session.Logits);
                greedy.Add(next);
                if (i + 1 < prompt.Greedy.Length) session.Step(next, full);
            }
            Assert.Equal(prompt.Greedy, greedy);
        }
    }
}
