using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Core.Numerics;
using Tidal.Core.Reference;

namespace Tidal.Core.Tests;

public class QuestTests
{
    [Property(MaxTest = 60)]
    public Property PageBound_IsAtLeastEveryScaledDotInItsPage_AndIncrementalEqualsRebuilt() =>
        Prop.ForAll(AttentionTests.Problems.ToArbitrary(), p =>
        {
            int pages = Quest.PageCount(p.Capacity), d = p.HeadDim;
            var min = new float[p.KvHeads * pages * d];
            var max = new float[min.Length];
            var key = new Half[p.KvHeads * d];
            for (int t = 0; t < p.Length; t++) // incremental, as decode appends
            {
                for (int h = 0; h < p.KvHeads; h++) p.Kv().Key(h, t).CopyTo(key.AsSpan(h * d));
                Quest.UpdatePageBounds<Half>(key, t, p.KvHeads, min, max);
            }
            var min2 = new float[min.Length];
            var max2 = new float[min.Length];
            Quest.BuildPageBounds(p.Kv(), min2, max2);
            Assert.Equal(min, min2);
            Assert.Equal(max, max2);

            var scores = new float[p.Heads * Quest.PageCount(p.Length)];
            Quest.ScorePages(p.Q, p.Heads, p.KvHeads, min, max, p.Length, scores);
            float scale = 1f / MathF.Sqrt(d);
            for (int h = 0; h < p.Heads; h++)
                for (int t = 0; t < p.Length; t++)
                {
                    float dot = Reduction.Dot(p.Kv().Key(h / p.Group, t), p.Q.AsSpan(h * d, d)) * scale;
                    // The bound's products are rounded separately from the dot's fused ones: allow both sums' error.
                    double slack = 2 * TestData.DotBound(d, 4.0 * d) * scale;
                    Assert.True(scores[h * Quest.PageCount(p.Length) + t / Quest.PageSize] >= dot - slack, $"head {h} token {t}");
                }
        });

    [Property(MaxTest = 60)]
    public Property SelectTokens_KeepsTheCurrentPage_AndAllPagesGiveDenseAttention() =>
        Prop.ForAll(AttentionTests.Problems.ToArbitrary(), Gen.Choose(1, 20).ToArbitrary(), (p, pageBudget) =>
        {
            int pages = Quest.PageCount(p.Length);
            float[] scores = TestData.Floats(new Random(p.Seed), pages);
            var tokens = new int[pageBudget * Quest.PageSize];
            int count = Quest.SelectTokens(scores, pageBudget, p.Length, tokens);
            Assert.Equal(Quest.SelectedTokenCount(p.Length, pageBudget), count);
            Assert.Contains(p.Length - 1, tokens.Take(count));
            Assert.Equal(tokens.Take(count).Order(), tokens.Take(count));
            Assert.True(tokens.Take(count).All(t => t < p.Length));
            if (pageBudget >= pages)
            {
                Assert.Equal(p.Length, count);
                var sparse = new float[p.Heads * p.HeadDim];
                Attention.SparsePerKvHead(p.Q, p.Kv(), Enumerable.Repeat(tokens.Take(count), p.KvHeads).SelectMany(x => x).ToArray(), count, sparse);
                var dense = new float[sparse.Length];
                Attention.Dense(p.Q, p.Kv(), dense);
                TestData.AssertBitwiseEqual(dense, sparse, "quest with every page");
            }
        });

    [Fact]
    public void BadArguments_ThrowNamingTheArgument()
    {
        Assert.Equal("position", Assert.Throws<ArgumentException>(() => Quest.UpdatePageBounds<float>(new float[8], 16, 1, new float[8], new float[8])).ParamName);
        Assert.Equal("min", Assert.Throws<ArgumentException>(() => Quest.UpdatePageBounds<float>(new float[8], 0, 1, new float[7], new float[8])).ParamName);
        Assert.Equal("kvHeads", Assert.Throws<ArgumentException>(() => Quest.ScorePages(new float[24], 3, 2, new float[16], new float[16], 5, new float[3])).ParamName);
    }
}
