using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Core.Numerics;
using Tidal.Kernels.Kernels;

namespace Tidal.Kernels.Tests;

/// <summary>The kernels' arithmetic helpers, run on the host, against the reference and System.Half.</summary>
public class KernelMathTests
{
    private static float RandomFloat(Random r) => BitConverter.Int32BitsToSingle(r.Next() | (r.Next(2) << 31));

    [Property(MaxTest = 200)]
    public Property ExpAndLog_AreTheReferencesBitForBit() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue - 1).ToArbitrary(), seed =>
        {
            var r = new Random(seed);
            for (int i = 0; i < 64; i++)
            {
                float x = i % 2 == 0 ? (float)(r.NextDouble() * 220 - 120) : RandomFloat(r);
                Assert.Equal(BitConverter.SingleToInt32Bits(TidalMath.Exp(x)), BitConverter.SingleToInt32Bits(KernelMath.Exp(x)));
                Assert.Equal(BitConverter.SingleToInt32Bits(TidalMath.Log(x)), BitConverter.SingleToInt32Bits(KernelMath.Log(x)));
                Assert.Equal(BitConverter.SingleToInt32Bits(TidalMath.Silu(x)), BitConverter.SingleToInt32Bits(KernelMath.Silu(x)));
            }
        });

    /// <summary>Any bit pattern (NaNs of both signs, both zeros, infinities, subnormals among them) gets the reference's
    /// order-preserving key.</summary>
    [Property(MaxTest = 200)]
    public Property OrderedKey_IsTheReferences() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue - 1).ToArbitrary(), seed =>
        {
            var r = new Random(seed);
            float[] special = [float.NaN, -float.NaN, 0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, -float.Epsilon];
            for (int i = 0; i < 64; i++)
            {
                float x = i < special.Length ? special[i] : RandomFloat(r);
                Assert.Equal(Tidal.Core.Reference.TopK.OrderedKey(x), KernelMath.OrderedKey(x));
            }
        });

    [Property(MaxTest = 300)]
    public Property FloatToHalf_RoundsLikeSystemHalf() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue - 1).ToArbitrary(), seed =>
        {
            var r = new Random(seed);
            for (int i = 0; i < 64; i++)
            {
                // Bias towards the F16 range, where the rounding matters, and keep some of everything else.
                float x = i % 4 == 0 ? RandomFloat(r) : (float)((r.NextDouble() * 2 - 1) * Math.Pow(2, r.Next(-26, 17)));
                ushort expected = BitConverter.HalfToUInt16Bits((Half)x);
                ushort got = KernelMath.FloatToHalf(x);
                if (float.IsNaN(x)) Assert.True(Half.IsNaN(BitConverter.UInt16BitsToHalf(got)));
                else Assert.True(expected == got, $"{x:R}: expected 0x{expected:X4}, got 0x{got:X4}");
            }
        });

    [Fact]
    public void HalfToFloat_IsExact_OnAll65536Inputs()
    {
        for (int bits = 0; bits < 65536; bits++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf((ushort)bits);
            float got = KernelMath.HalfToFloat((uint)bits);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(got));
            else Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(got));
            if (!float.IsNaN(expected)) Assert.Equal((ushort)bits, KernelMath.FloatToHalf(got));
        }
    }
}

public class SoftFmaTests
{
    [Property(MaxTest = 300)]
    public Property SoftFma_IsTheFusedMultiplyAdd_BitForBit() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue - 1).ToArbitrary(), seed =>
        {
            var r = new Random(seed);
            float Any() => BitConverter.Int32BitsToSingle(r.Next() | (r.Next(2) << 31));
            float Near(float x) => BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(x) + r.Next(-3, 4));
            for (int i = 0; i < 1000; i++)
            {
                float a = i % 3 == 0 ? Any() : (float)(r.NextDouble() * 4 - 2), b = i % 3 == 0 ? Any() : (float)(r.NextDouble() * 4 - 2);
                // c near −a·b exercises cancellation; c near a·b's rounding boundary exercises ties.
                float c = (i % 4) switch { 0 => Any(), 1 => Near(-(a * b)), 2 => Near(a * b), _ => (float)(r.NextDouble() - 0.5) };
                float expected = MathF.FusedMultiplyAdd(a, b, c), got = Tidal.Kernels.Kernels.KernelMath.SoftFma(a, b, c);
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(got) || (float.IsNaN(expected) && float.IsNaN(got)),
                    $"fma({a:R}, {b:R}, {c:R}) = {expected:R}, soft {got:R}");
            }
        });
}
