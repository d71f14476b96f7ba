using Tidal.Core.Backends;
using Tidal.Models.Engine;

namespace Tidal.Models.Tests;

public class GenerationTests
{
    private static readonly Lazy<LlamaModel> Tiny = new(() => LlamaModel.Load(TinyModel.Directory!, new CpuBackend()));

    private static async Task<List<GeneratedToken>> Collect(Session session, string prompt, GenerationOptions options, CancellationToken token = default)
    {
        var list = new List<GeneratedToken>();
        await foreach (var t in session.GenerateAsync(prompt, options, token)) list.Add(t);
        return list;
    }

    [TinyModelFact]
    public async Task GreedyGeneration_StreamsTheGoldenContinuation_AndStopsAtEos()
    {
        var golden = TinyModel.Golden().Single(p => p.Name == "short-needle");
        using Session session = Tiny.Value.CreateSession(256);
        var tokens = await Collect(session, golden.Text, new GenerationOptions { MaxNewTokens = 32 });
        int eos = Array.IndexOf(golden.Greedy, 1);
        Assert.True(eos > 0, "the golden continuation of short-needle ends its answer with EOS");
        Assert.Equal(golden.Greedy.Take(eos), tokens.Select(t => t.Id));
        Assert.Equal(" 40917.", string.Concat(tokens.Select(t => t.Text)));
    }

    [TinyModelFact]
    public async Task StopStrings_EndGenerationBeforeTheStopText()
    {
        var golden = TinyModel.Golden().Single(p => p.Name == "short-genesis");
        using Session session = Tiny.Value.CreateSession(256);
        var tokens = await Collect(session, golden.Text, new GenerationOptions { MaxNewTokens = 32, StopStrings = ["magic"] });
        Assert.Equal(" The special ", string.Concat(tokens.Select(t => t.Text)));
    }

    [TinyModelFact]
    public async Task TidalDecodeAndQuest_Generate_WithEveryScope()
    {
        var golden = TinyModel.Golden().Single(p => p.Name == "needle-1500");
        int layers = Tiny.Value.Config.Layers;
        foreach (var policy in new[]
                 {
                     AttentionPolicy.TidalDecode(layers, 4096), // covers the context: must equal the golden greedy tokens
                     AttentionPolicy.TidalDecode(layers, 256, scope: SelectionScope.KvHead, correctionInterval: 8),
                     AttentionPolicy.Quest(layers, 256),
                 })
        {
            using Session session = Tiny.Value.CreateSession(2048);
            var tokens = await Collect(session, golden.Text, new GenerationOptions { MaxNewTokens = 8, Policy = policy, StopAtEndOfSequence = false });
            Assert.Equal(8, tokens.Count);
            if (policy.TokenBudget >= 2048) Assert.Equal(golden.Greedy.Take(8), tokens.Select(t => t.Id));
        }
    }

    [TinyModelFact]
    public async Task CancelledGeneration_LeavesTheSessionUsable()
    {
        using Session session = Tiny.Value.CreateSession(256);
        using var cts = new CancellationTokenSource();
        var seen = new List<GeneratedToken>();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var t in session.GenerateAsync("In the beginning", new GenerationOptions { MaxNewTokens = 50, StopAtEndOfSequence = false }, cts.Token))
            {
                seen.Add(t);
                if (seen.Count == 3) cts.Cancel();
            }
        });
        Assert.Equal(3, seen.Count);
        int before = session.Tokens.Count;
        var more = await Collect(session, " and", new GenerationOptions { MaxNewTokens = 3, StopAtEndOfSequence = false });
        Assert.Equal(3, more.Count);
        Assert.True(session.Tokens.Count > before);
    }

    [TinyModelFact]
    public async Task SampledGeneration_IsReproducibleForASeed()
    {
        var options = new GenerationOptions { MaxNewTokens = 12, Temperature = 0.8f, TopP = 0.9f, Seed = 42, StopAtEndOfSequence = false };
        using Session a = Tiny.Value.CreateSession(64), b = Tiny.Value.CreateSession(64);
        var first = await Collect(a, "The pass key", options);
        var second = await Collect(b, "The pass key", options);
        Assert.Equal(first.Select(t => t.Id), second.Select(t => t.Id));
    }

    [TinyModelFact]
    public async Task TooLongAGeneration_IsRejectedUpFront()
    {
        using Session session = Tiny.Value.CreateSession(16);
        await Assert.ThrowsAsync<ContextLengthExceededException>(() => Collect(session, "In the beginning", new GenerationOptions { MaxNewTokens = 32 }));
        Assert.Empty(session.Tokens);
    }
}
