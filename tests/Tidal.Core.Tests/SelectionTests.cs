using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Core.Reference;

namespace Tidal.Core.Tests;

public class SelectionTests
{
    public sealed record Case(int N, int Budget, int Sinks, int Window, int Seed, bool Ties)
    {
        /// <summary>Scores; with Ties, drawn from a handful of values (plus NaN and ±∞) so the tie rule decides.</summary>
        public float[] Scores()
        {
            var random = new Random(Seed);
            float[] pool = [float.NegativeInfinity, -3f, 0f, 0.5f, 2f, float.PositiveInfinity, float.NaN, -0f];
            return Enumerable.Range(0, N).Select(_ => Ties ? pool[random.Next(pool.Length)] : (float)(random.NextDouble() * 100 - 50)).ToArray();
        }
    }

    public static Gen<Case> Cases =>
        // Rows beyond 2048 positions too: the reference keeps its candidates in a pooled array there, not on the stack.
        from n in Gen.Frequency((4, Gen.Choose(1, 400)), (1, Gen.Choose(2049, 5000))) from budget in Gen.Choose(1, 420) from sinks in Gen.Choose(0, 4) from window in Gen.Choose(0, 6)
        from seed in TestData.Seed from ties in Gen.Elements(true, false)
        select new Case(n, budget, sinks, window, seed, ties);

    /// <summary>The specification, by sorting: forced positions, then the best others by (score desc, position asc).</summary>
    private static int[] Oracle(float[] scores, int budget, ForcedTokens forced)
    {
        int n = scores.Length;
        if (budget >= n) return Enumerable.Range(0, n).ToArray();
        var forcedSet = Enumerable.Range(0, n).Where(t => t < forced.Sinks || t >= n - Math.Max(1, forced.Window)).ToHashSet();
        var rest = Enumerable.Range(0, n).Where(t => !forcedSet.Contains(t))
            .OrderByDescending(t => float.IsNaN(scores[t]) ? double.NegativeInfinity : scores[t])
            .ThenBy(t => float.IsNaN(scores[t]) ? 1 : 0) // NaN ranks below −∞
            .ThenBy(t => t)
            .Take(budget - forcedSet.Count);
        return forcedSet.Concat(rest).Order().ToArray();
    }

    [Property(MaxTest = 300)]
    public Property Select_HoldsExactlyTheKLargest_WithTheTieRule_PlusForcedPositions() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            float[] scores = c.Scores();
            var forced = new ForcedTokens(c.Sinks, c.Window);
            int forcedCount = Enumerable.Range(0, c.N).Count(t => t < c.Sinks || t >= c.N - Math.Max(1, c.Window));
            var selected = new int[Math.Min(c.Budget, c.N)];
            if (c.Budget < c.N && forcedCount > c.Budget)
            {
                Assert.Equal("budget", Assert.Throws<ArgumentException>(() => TopK.Select(scores, c.Budget, selected, forced)).ParamName);
                return;
            }
            int count = TopK.Select(scores, c.Budget, selected, forced);
            Assert.Equal(Oracle(scores, c.Budget, forced), selected.Take(count).ToArray());
            Assert.Contains(c.N - 1, selected); // the current token
        });

    [Property(MaxTest = 100)]
    public Property AggregateGroup_IsTheLogOfSummedProbabilities() =>
        Prop.ForAll(Gen.Choose(1, 300).ToArbitrary(), Gen.Choose(1, 5).ToArbitrary(), TestData.Seed.ToArbitrary(), (n, group, seed) =>
        {
            // Sharp logits (span ~450, like tidal-tiny) so that fp32 probabilities underflow to zero.
            float[] logits = TestData.Floats(new Random(seed), group * n, 225f);
            var aggregated = new float[n];
            TopK.AggregateGroup(logits, group, aggregated);
            double[] lse = Enumerable.Range(0, group).Select(h =>
            {
                double m = Enumerable.Range(0, n).Max(t => (double)logits[h * n + t]);
                return m + Math.Log(Enumerable.Range(0, n).Sum(t => Math.Exp(logits[h * n + t] - m)));
            }).ToArray();
            for (int t = 0; t < n; t++)
            {
                double[] lp = Enumerable.Range(0, group).Select(h => logits[h * n + t] - lse[h]).ToArray();
                double m = lp.Max();
                double expected = m + Math.Log(lp.Sum(v => Math.Exp(v - m)));
                // Inputs up to 450 in magnitude: each subtraction rounds at ~3e-5 absolute, Exp/Log add 2 ulp relative.
                Assert.True(Math.Abs(aggregated[t] - expected) <= 1e-4 + 1e-6 * Math.Abs(expected), $"t={t}: {aggregated[t]} vs {expected}");
            }
        });

    [Fact]
    public void PerKvHead_SharesOneSetPerGroup_AndPerQueryHead_OneSetPerHead()
    {
        const int n = 50, heads = 4, kvHeads = 2, budget = 10;
        float[] logits = TestData.Floats(new Random(3), heads * n, 10f);
        var perQ = new int[heads * budget];
        TopK.SelectPerQueryHead(logits, heads, budget, perQ);
        for (int h = 0; h < heads; h++)
            Assert.Equal(Oracle(logits[(h * n)..((h + 1) * n)], budget, default), perQ[(h * budget)..((h + 1) * budget)]);
        var perKv = new int[kvHeads * budget];
        TopK.SelectPerKvHead(logits, heads, kvHeads, budget, perKv);
        var aggregated = new float[n];
        TopK.AggregateGroup(logits.AsSpan(2 * n, 2 * n), 2, aggregated);
        Assert.Equal(Oracle(aggregated, budget, default), perKv[budget..]);
    }

    [Fact]
    public void BadArguments_ThrowNamingTheArgument()
    {
        Assert.Equal("budget", Assert.Throws<ArgumentException>(() => TopK.Select([1f, 2f], 0, new int[2])).ParamName);
        Assert.Equal("selected", Assert.Throws<ArgumentException>(() => TopK.Select([1f, 2f, 3f], 2, new int[1])).ParamName);
        Assert.Equal("scores", Assert.Throws<ArgumentException>(() => TopK.Select([], 2, new int[1])).ParamName);
        Assert.Equal("kvHeads", Assert.Throws<ArgumentException>(() => TopK.SelectPerKvHead(new float[30], 3, 2, 4, new int[8])).ParamName);
        Assert.Equal("heads", Assert.Throws<ArgumentException>(() => TopK.SelectPerQueryHead(new float[30], 0, 4, new int[8])).ParamName);
    }
}
