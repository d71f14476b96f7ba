using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Core.Reference;

namespace Tidal.Core.Tests;

public sealed class SamplingTests
{
    private static double[] Probabilities(float[] logits, float temperature)
    {
        double m = logits.Max() / (double)temperature;
        double[] e = logits.Select(x => Math.Exp(x / (double)temperature - m)).ToArray();
        double s = e.Sum();
        return e.Select(v => v / s).ToArray();
    }

    [Fact]
    public void Frequencies_FollowTheSoftmax_AndTheNucleusRenormalised()
    {
        float[] logits = [2f, 1f, 0.5f, -1f, 0f];
        const int draws = 20000;
        foreach ((float temperature, float topP) in new[] { (1f, 1f), (0.5f, 1f), (1f, 0.6f) })
        {
            double[] p = Probabilities(logits, temperature);
            // The nucleus by an independent route: probabilities sorted descending until their sum reaches topP.
            int[] order = Enumerable.Range(0, p.Length).OrderByDescending(i => p[i]).ToArray();
            var nucleus = new HashSet<int>();
            double mass = 0;
            foreach (int i in order) { if (mass >= topP) break; nucleus.Add(i); mass += p[i]; }
            var counts = new int[logits.Length];
            for (long step = 0; step < draws; step++) counts[Sampling.Sample(logits, temperature, topP, 7, step)]++;
            for (int i = 0; i < logits.Length; i++)
            {
                double expected = nucleus.Contains(i) ? p[i] / mass : 0;
                // 20,000 draws: the standard deviation of a frequency is at most 0.0036, so 0.02 is over 5σ; the
                // draws are a fixed function of (seed, step), so this cannot flake.
                Assert.True(Math.Abs(counts[i] / (double)draws - expected) < 0.02, $"T={temperature} p={topP} token {i}: {counts[i] / (double)draws} vs {expected}");
            }
        }
    }

    [Property(MaxTest = 100)]
    public Property Draws_StayInTheNucleus_AndRepeatForTheSameStep() =>
        Prop.ForAll(Gen.Choose(1, 500).ToArbitrary(), TestData.Seed.ToArbitrary(), (n, seed) =>
        {
            var random = new Random(seed);
            float[] logits = TestData.Floats(random, n, 8f);
            float topP = 0.05f + 0.95f * random.NextSingle(), temperature = 0.2f + 2f * random.NextSingle();
            double[] p = Probabilities(logits, temperature);
            // Every token whose probability is above the nucleus' smallest member is in it; rounding of the fixed-point
            // masses (2^-32 each) can only move tokens whose probabilities sit within 1e-6 of that boundary.
            int[] order = Enumerable.Range(0, n).OrderByDescending(i => p[i]).ToArray();
            double mass = 0, smallest = 1;
            foreach (int i in order) { if (mass >= topP) break; mass += p[i]; smallest = p[i]; }
            for (long step = 0; step < 20; step++)
            {
                int token = Sampling.Sample(logits, temperature, topP, (ulong)seed, step);
                Assert.True(p[token] >= smallest - 1e-6, $"token {token} (p = {p[token]}) lies outside the nucleus (smallest {smallest})");
                Assert.Equal(token, Sampling.Sample(logits, temperature, topP, (ulong)seed, step));
            }
            Assert.Equal(Elementwise.Argmax(logits), Sampling.Sample(logits, 0f, topP, (ulong)seed, 0));
        });

    [Fact]
    public void BadOptions_AreRejected_AndInfinitiesAreGreedy()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Sampling.Sample([1f], -1f, 1f, 0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Sampling.Sample([1f], 1f, 0f, 0, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Sampling.Sample([1f], float.NaN, 1f, 0, 0));
        Assert.Equal(2, Sampling.Sample([0f, 1f, float.PositiveInfinity], 1f, 1f, 0, 0));
        Assert.Equal(0, Sampling.Sample([float.NegativeInfinity, float.NegativeInfinity], 1f, 1f, 0, 0));
    }
}
