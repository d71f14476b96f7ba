using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Core.Numerics;
using Tidal.Core.Reference;

namespace Tidal.Core.Tests;

/// <summary>RMSNorm, SwiGLU, softmax, argmax, embedding and residual against double-precision oracles.</summary>
public class LayerOpTests
{
    private static Gen<(int N, int Seed)> Cases => from n in Gen.Choose(1, 700) from seed in TestData.Seed select (n, seed);

    [Property(MaxTest = 100)]
    public Property RmsNorm_MatchesDoubleOracle() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            var random = new Random(c.Seed);
            float[] x = TestData.Floats(random, c.N, 4f);
            BFloat16[] w = TestData.BFloat16s(random, c.N, 2f);
            var y = new float[c.N];
            RmsNorm.Apply<BFloat16>(x, w, 1e-5f, y);
            double ss = x.Sum(v => (double)v * v);
            double r = 1 / Math.Sqrt(ss / c.N + 1e-5);
            double[] expected = x.Select((v, i) => v * r * (float)w[i]).ToArray();
            // r carries the sum-of-squares error (DotBound, relative ≤ ~1e-6 here) halved by the sqrt, plus a few
            // roundings (sqrt, divide, two multiplies): 2e-6 relative per element covers both with margin.
            double[] bound = expected.Select(e => 2e-6 * Math.Abs(e) + 1e-30).ToArray();
            TestData.AssertClose(expected, y, bound, "rmsnorm");
        });

    [Property(MaxTest = 100)]
    public Property SwiGlu_MatchesDoubleOracle() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            var random = new Random(c.Seed);
            float[] gate = TestData.Floats(random, c.N, 20f), up = TestData.Floats(random, c.N, 3f);
            var y = new float[c.N];
            Elementwise.SwiGlu(gate, up, y);
            double[] expected = gate.Select((g, i) => g / (1 + Math.Exp(-(double)g)) * up[i]).ToArray();
            // Exp is within 2 ulp; 1 + e, the divide and the multiply add one rounding each: 8 ulp relative.
            double[] bound = expected.Select(e => 8 * TestData.Eps * Math.Abs(e) + 1e-37).ToArray();
            TestData.AssertClose(expected, y, bound, "swiglu");
        });

    [Property(MaxTest = 100)]
    public Property Softmax_MatchesDoubleOracle_EvenForHugeLogits() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            float[] x = TestData.Floats(new Random(c.Seed), c.N, 500f); // spans like tidal-tiny's sharp attention
            var y = new float[c.N];
            Softmax.Apply(x, y);
            double m = x.Max();
            double[] e = x.Select(v => Math.Exp(v - m)).ToArray();
            double s = e.Sum();
            double[] expected = e.Select(v => v / s).ToArray();
            // Exp 2 ulp, the canonical sum ≤ DotBound relative, one divide; and the shifted argument x − m, rounded to
            // float, is off by up to half an ulp of |x − m|, which exp turns into a relative error of |x − m|·2⁻²⁴
            // (it dominates for spread logits: a failing seed had x − m ≈ −66, off by 64 ulp).
            double[] bound = expected.Select((v, i) => (8 + 2 * ((c.N + 255) / 256 + 9) + Math.Abs(x[i] - m)) * TestData.Eps * v + 1e-44).ToArray();
            TestData.AssertClose(expected, y, bound, "softmax");
            float[] big = [100f, 0f, 1f];
            var p = new float[3];
            Softmax.Apply(big, p);
            Assert.True(p.All(float.IsFinite));
        });

    [Property(MaxTest = 60)]
    public Property LogSumExpTokens_AcrossBlocks_MatchesDoubleOracle() =>
        Prop.ForAll(Gen.Choose(1, 5 * Softmax.LseBlock + 37).ToArbitrary(), TestData.Seed.ToArbitrary(), (n, seed) =>
        {
            float[] x = TestData.Floats(new Random(seed), n, 60f);
            double m = x.Max();
            double expected = m + Math.Log(x.Sum(v => Math.Exp(v - m)));
            float lse = Softmax.LogSumExpTokens(x);
            // Each block sum (≤ 16 adds per slot, 5 fold adds, Exp 2 ulp) and the merge's sum are within ~30 ulp relative;
            // Log turns that into absolute error and adds 2 ulp of its result; adding m rounds once more relative to
            // |lse|. 64·eps·(|lse| + 8) covers both stages with slack.
            double bound = 64 * TestData.Eps * (Math.Abs(expected) + 8);
            Assert.True(Math.Abs(lse - expected) <= bound, $"n={n}: {lse} vs {expected} (bound {bound})");
            Assert.Equal(float.NegativeInfinity, Softmax.LogSumExpTokens([float.NegativeInfinity, float.NegativeInfinity]));
        });

    [Fact]
    public void Argmax_TakesTheLowestIndexOfTies_AndSkipsNaN()
    {
        Assert.Equal(1, Elementwise.Argmax([1f, 5f, 5f, 2f]));
        Assert.Equal(2, Elementwise.Argmax([float.NaN, -1f, 3f]));
        Assert.Equal(0, Elementwise.Argmax([float.NegativeInfinity, float.NegativeInfinity]));
        Assert.Throws<ArgumentException>(() => Elementwise.Argmax([]));
    }

    [Fact]
    public void Embed_WidensTheRow_AndRejectsOutOfVocabularyTokens()
    {
        Half[] table = Enumerable.Range(0, 12).Select(i => (Half)i).ToArray();
        var row = new float[4];
        Elementwise.Embed<Half>(table, 2, row);
        Assert.Equal([8f, 9f, 10f, 11f], row);
        Assert.Equal("token", Assert.Throws<ArgumentOutOfRangeException>(() => Elementwise.Embed<Half>(table, 3, row)).ParamName);
        Assert.Equal("table", Assert.Throws<ArgumentException>(() => Elementwise.Embed<Half>(table, 0, new float[5])).ParamName);
    }

    [Fact]
    public void Residual_AddsExactly_AndChecksLengths()
    {
        float[] x = [1f, 2f, 3f];
        Elementwise.AddInPlace(x, [0.5f, -2f, 1e-8f]);
        Assert.Equal([1.5f, 0f, 3f + 1e-8f], x);
        Assert.Equal("y", Assert.Throws<ArgumentException>(() => Elementwise.AddInPlace(x, new float[2])).ParamName);
    }

    [Fact]
    public void BadShapes_ThrowArgumentExceptionNamingTheArgument()
    {
        Assert.Equal("weight", Assert.Throws<ArgumentException>(() => RmsNorm.Apply<float>(new float[4], new float[3], 1e-5f, new float[4])).ParamName);
        Assert.Equal("up", Assert.Throws<ArgumentException>(() => Elementwise.SwiGlu(new float[4], new float[3], new float[4])).ParamName);
        Assert.Equal("y", Assert.Throws<ArgumentException>(() => Softmax.Apply(new float[4], new float[3])).ParamName);
    }
}
