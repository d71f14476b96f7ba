using System.Runtime.Intrinsics;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Core.Numerics;

namespace Tidal.Core.Tests;

public class ReductionTests
{
    /// <summary>The feature-axis order written out literally from its specification, one scalar at a time.</summary>
    private static float SpecDot(float[] a, float[] b, int laneCount = 32)
    {
        var acc = new float[laneCount, 8];
        for (int i = 0; i < a.Length; i++) acc[(i / 8) % laneCount, i % 8] = MathF.FusedMultiplyAdd(a[i], b[i], acc[(i / 8) % laneCount, i % 8]);
        var lanes = new float[laneCount];
        for (int l = 0; l < laneCount; l++)
        {
            var s = new float[8];
            for (int e = 0; e < 8; e++) s[e] = acc[l, e];
            for (int h = 4; h >= 1; h /= 2) for (int e = 0; e < h; e++) s[e] += s[e + h];
            lanes[l] = s[0];
        }
        for (int h = laneCount / 2; h >= 1; h /= 2) for (int l = 0; l < h; l++) lanes[l] += lanes[l + h];
        return lanes[0];
    }

    private static Gen<(int N, int Seed)> Cases => from n in Gen.Choose(0, 1200) from seed in TestData.Seed select (n, seed);

    [Property(MaxTest = 200)]
    public Property Dot_FollowsTheDocumentedOrderBitwise_AndIsAccurate() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            var random = new Random(c.Seed);
            float[] a = TestData.Floats(random, c.N), b = TestData.Floats(random, c.N, 3f);
            float got = Reduction.Dot<float>(a, b);
            Assert.Equal(BitConverter.SingleToInt32Bits(SpecDot(a, b)), BitConverter.SingleToInt32Bits(got));
            double exact = 0, sumAbs = 0;
            for (int i = 0; i < c.N; i++) { exact += (double)a[i] * b[i]; sumAbs += Math.Abs((double)a[i] * b[i]); }
            Assert.True(Math.Abs(got - exact) <= TestData.DotBound(c.N, sumAbs), $"n={c.N}: {got:R} vs {exact:R}");
        });

    /// <summary>Attention scores use the same order over fewer lanes (Reduction.ScoreLanes).</summary>
    [Property(MaxTest = 200)]
    public Property Dot_OverFewerLanes_FollowsTheDocumentedOrderBitwise() =>
        Prop.ForAll(Cases.ToArbitrary(), Gen.Elements(1, 2, 4, 8, 16, 32).ToArbitrary(), (c, lanes) =>
        {
            var random = new Random(c.Seed);
            float[] a = TestData.Floats(random, c.N), b = TestData.Floats(random, c.N, 3f);
            Assert.Equal(BitConverter.SingleToInt32Bits(SpecDot(a, b, lanes)), BitConverter.SingleToInt32Bits(Reduction.Dot<float>(a, b, lanes)));
        });

    /// <summary>The vector lane fold (AVX) and the portable one give the same bits, for any number of used lanes (the rest
    /// +0, as the dots leave them) and accumulator values of any sign and scale.</summary>
    [Property(MaxTest = 200)]
    public Property FoldLanes_EqualsThePortableFold_Bitwise() =>
        Prop.ForAll(Gen.Choose(0, Reduction.Lanes).ToArbitrary(), TestData.Seed.ToArbitrary(), (used, seed) =>
        {
            var random = new Random(seed);
            var lanes = new Vector256<float>[Reduction.Lanes];
            for (int l = 0; l < used; l++) lanes[l] = Vector256.Create(TestData.Floats(random, 8, MathF.Pow(10f, random.Next(-3, 4))));
            Assert.Equal(BitConverter.SingleToInt32Bits(Reduction.FoldLanesPortable(lanes)), BitConverter.SingleToInt32Bits(Reduction.FoldLanes(lanes)));
        });

    [Property(MaxTest = 100)]
    public Property Sum_EqualsDotWithOnes_Bitwise() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            float[] x = TestData.Floats(new Random(c.Seed), c.N, 100f);
            float[] ones = Enumerable.Repeat(1f, c.N).ToArray();
            Assert.Equal(BitConverter.SingleToInt32Bits(SpecDot(x, ones)), BitConverter.SingleToInt32Bits(Reduction.Sum(x)));
        });

    [Property(MaxTest = 100)]
    public Property Dot_OfHalfAndBFloat16_EqualsDotOfTheirWidenedValues() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            var random = new Random(c.Seed);
            Half[] h = TestData.Halves(random, c.N);
            BFloat16[] bf = TestData.BFloat16s(random, c.N);
            float[] x = TestData.Floats(random, c.N);
            float[] hw = h.Select(v => (float)v).ToArray(), bw = bf.Select(v => (float)v).ToArray();
            Assert.Equal(Reduction.Dot<float>(hw, x), Reduction.Dot<Half>(h, x));
            Assert.Equal(Reduction.Dot<float>(bw, x), Reduction.Dot<BFloat16>(bf, x));
            Assert.Equal(Reduction.Dot<float>(hw, x, Reduction.ScoreLanes), Reduction.Dot<Half>(h, x, Reduction.ScoreLanes));
            Assert.Equal(Reduction.Dot<float>(bw, x, Reduction.ScoreLanes), Reduction.Dot<BFloat16>(bf, x, Reduction.ScoreLanes));
        });

    [Fact]
    public void Dot_OfMismatchedLengths_ThrowsNamingB()
    {
        var e = Assert.Throws<ArgumentException>(() => Reduction.Dot<float>(new float[3], new float[4]));
        Assert.Equal("b", e.ParamName);
    }
}
