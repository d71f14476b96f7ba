using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Core.Reference;
using Tidal.Models.Config;
using Tidal.Models.Engine;

namespace Tidal.Models.Tests;

/// <summary>The random KV cache that decode benchmarks on random weights use instead of a prefill.</summary>
public class RandomContextTests
{
    private static readonly LlamaConfig Small = SmallModel.Config(layers: 4);

    [Theory]
    [InlineData(37)] // a partial last page
    [InlineData(48)]
    public void Fill_WritesRandomKeysAndValues_AndTheQuestBoundsAppendingThemWouldBuild(int length)
    {
        const int capacity = 100;
        using var backend = new CpuBackend();
        using var state = new DecodeState(Small, backend, capacity, DType.F16);
        RandomContext.Fill(state, backend, length, seed: 3);
        int kv = Small.KvHeads, d = Small.HeadDim, maxPages = Quest.PageCount(capacity);
        var firstKeys = new Half[kv * capacity * d];
        for (int l = 0; l < Small.Layers; l++)
        {
            var keys = new Half[kv * capacity * d];
            var values = new Half[kv * capacity * d];
            backend.Download<Half>(state.Keys[l], keys);
            backend.Download<Half>(state.Values[l], values);
            for (int h = 0; h < kv; h++)
                for (int p = 0; p < capacity; p++)
                    for (int i = 0; i < d; i++)
                    {
                        float k = (float)keys[(h * capacity + p) * d + i], v = (float)values[(h * capacity + p) * d + i];
                        if (p >= length) Assert.True(k == 0 && v == 0, "positions past the context stay empty");
                        else Assert.True(k is >= -1 and <= 1 && v is >= -1 and <= 1, $"({h}, {p}, {i}): {k}, {v}");
                    }
            Assert.True(keys.Take(length * d).Distinct().Count() > length * d / 2, "keys are spread, not constant");
            Assert.NotEqual(keys, values);
            if (l == 0) keys.CopyTo(firstKeys, 0);
            else Assert.NotEqual(firstKeys, keys);
            // Oracle: the bounds the reference builds by appending every key one position at a time.
            var expectedMin = new float[kv * maxPages * d];
            var expectedMax = new float[kv * maxPages * d];
            Quest.BuildPageBounds(new KvView<Half>(keys, values, kv, capacity, d, length), expectedMin, expectedMax);
            var min = new float[kv * maxPages * d];
            var max = new float[kv * maxPages * d];
            backend.Download<float>(state.PageMin[l], min);
            backend.Download<float>(state.PageMax[l], max);
            Assert.Equal(expectedMin, min);
            Assert.Equal(expectedMax, max);
        }
    }

    [Fact]
    public void Session_DecodesAfterARandomContext_AndRefusesOneWhenNotEmpty()
    {
        using LlamaModel model = LlamaModel.FromWeights(ModelWeights.Random(Small, new CpuBackend(), DType.F16, seed: 1));
        using Session session = model.CreateSession(64);
        session.FillRandomContext(40, seed: 5);
        Assert.Equal(40, session.Tokens.Count);
        Assert.Equal(0, session.Sample()); // all-zero logits until the first step
        session.Step(5, AttentionPolicy.Quest(Small.Layers, 16));
        session.Step(6, AttentionPolicy.TidalDecode(Small.Layers, 16));
        Assert.All(session.Logits.ToArray(), x => Assert.True(float.IsFinite(x)));
        Assert.Throws<InvalidOperationException>(() => session.FillRandomContext(4, seed: 5));
        using Session other = model.CreateSession(64);
        Assert.Throws<ContextLengthExceededException>(() => other.FillRandomContext(65, seed: 5));
    }
}
