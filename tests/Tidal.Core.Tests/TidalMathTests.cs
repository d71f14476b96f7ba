using System.Runtime.Intrinsics;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Core.Numerics;

namespace Tidal.Core.Tests;

public class TidalMathTests
{
    private static double UlpOf(double v) => Math.Max(Math.Abs(v) * TestData.Eps * 2, 1.401298464324817e-45);

    [Property(MaxTest = 300)]
    public Property Exp_IsWithin2UlpOfDoubleExp_AndVectorMatchesScalarBitwise() =>
        Prop.ForAll(TestData.Seed.ToArbitrary(), seed =>
        {
            var random = new Random(seed);
            var x = new float[8];
            for (int i = 0; i < 8; i++) x[i] = (float)(random.NextDouble() * 200 - 110); // spans underflow, subnormals, normals, overflow
            float[] vector = new float[8];
            TidalMath.Exp(Vector256.Create(x)).CopyTo(vector);
            for (int i = 0; i < 8; i++)
            {
                float scalar = TidalMath.Exp(x[i]);
                Assert.Equal(BitConverter.SingleToInt32Bits(scalar), BitConverter.SingleToInt32Bits(vector[i]));
                double exact = Math.Exp(x[i]);
                if (exact > float.MaxValue) Assert.True(float.IsPositiveInfinity(scalar));
                else Assert.True(Math.Abs(scalar - exact) <= 2 * UlpOf(exact), $"Exp({x[i]:R}) = {scalar:R}, exact {exact:R}");
            }
        });

    [Theory]
    [InlineData(0f, 1f)]
    [InlineData(float.NegativeInfinity, 0f)]
    [InlineData(float.PositiveInfinity, float.PositiveInfinity)]
    [InlineData(-200f, 0f)]
    [InlineData(100f, float.PositiveInfinity)]
    public void Exp_SpecialValues(float x, float expected)
    {
        Assert.Equal(expected, TidalMath.Exp(x));
        Assert.Equal(expected, TidalMath.Exp(Vector256.Create(x)).GetElement(3));
    }

    [Fact]
    public void Exp_NaNStaysNaN()
    {
        Assert.True(float.IsNaN(TidalMath.Exp(float.NaN)));
        Assert.True(float.IsNaN(TidalMath.Exp(Vector256.Create(float.NaN)).GetElement(0)));
    }

    [Property(MaxTest = 300)]
    public Property Log_IsWithin2UlpOfDoubleLog() =>
        Prop.ForAll(TestData.Seed.ToArbitrary(), seed =>
        {
            var random = new Random(seed);
            for (int i = 0; i < 16; i++)
            {
                float x = BitConverter.Int32BitsToSingle(random.Next(1, 0x7F80_0000)); // every positive finite float, subnormals included
                double exact = Math.Log(x);
                float got = TidalMath.Log(x);
                Assert.True(Math.Abs(got - exact) <= 2 * UlpOf(exact), $"Log({x:R}) = {got:R}, exact {exact:R}");
            }
        });

    [Fact]
    public void Log_SpecialValues()
    {
        Assert.Equal(float.NegativeInfinity, TidalMath.Log(0f));
        Assert.Equal(0f, TidalMath.Log(1f));
        Assert.True(float.IsNaN(TidalMath.Log(-1f)));
        Assert.True(float.IsNaN(TidalMath.Log(float.NaN)));
        Assert.Equal(float.PositiveInfinity, TidalMath.Log(float.PositiveInfinity));
    }
}
