using System.Runtime.Intrinsics;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Core.Numerics;

namespace Tidal.Core.Tests;

public class ConversionTests
{
    private static IEnumerable<ushort> AllBits => Enumerable.Range(0, 65536).Select(i => (ushort)i);

    [Fact]
    public void HalfWidening_MatchesSystemHalf_OnAll65536Inputs()
    {
        ushort[] bits = AllBits.ToArray();
        var widened = new float[bits.Length];
        for (int i = 0; i < bits.Length; i += 8)
            Conversions.WidenHalf(Vector128.Create(bits.AsSpan(i, 8))).CopyTo(widened.AsSpan(i));
        for (int i = 0; i < bits.Length; i++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf(bits[i]);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(widened[i]), $"0x{bits[i]:X4} must widen to NaN");
            else Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(widened[i]));
        }
    }

    /// <summary>The AVX2 widening and the portable one (which machines without AVX2 run) give the same bits for every
    /// input, NaN payloads included.</summary>
    [Fact]
    public void HalfWidening_EqualsThePortableWidening_OnAll65536Inputs()
    {
        ushort[] bits = AllBits.ToArray();
        for (int i = 0; i < bits.Length; i += 8)
        {
            Vector128<ushort> v = Vector128.Create(bits.AsSpan(i, 8));
            Assert.Equal(Conversions.WidenHalfPortable(v).AsUInt32(), Conversions.WidenHalf(v).AsUInt32());
        }
    }

    [Fact]
    public void HalfNarrowing_RoundTripsEveryHalf()
    {
        Half[] halves = AllBits.Select(BitConverter.UInt16BitsToHalf).ToArray();
        var floats = new float[halves.Length];
        Conversions.ToSingle(halves, floats);
        var back = new Half[halves.Length];
        Conversions.ToHalf(floats, back);
        for (int i = 0; i < halves.Length; i++)
            if (!Half.IsNaN(halves[i])) Assert.Equal(halves[i], back[i]);
            else Assert.True(Half.IsNaN(back[i]));
    }

    [Fact]
    public void BFloat16Widening_IsTheUpperHalfOfBinary32_OnAll65536Inputs()
    {
        BFloat16[] values = AllBits.Select(b => new BFloat16(b)).ToArray();
        var widened = new float[values.Length];
        Conversions.ToSingle(values, widened);
        for (int i = 0; i < values.Length; i++)
            Assert.Equal(values[i].Bits << 16, BitConverter.SingleToInt32Bits(widened[i]));
    }

    [Fact]
    public void BFloat16Narrowing_RoundTripsEveryBFloat16_AndKeepsNaN()
    {
        BFloat16[] values = AllBits.Select(b => new BFloat16(b)).ToArray();
        var floats = new float[values.Length];
        Conversions.ToSingle(values, floats);
        var back = new BFloat16[values.Length];
        Conversions.ToBFloat16(floats, back);
        for (int i = 0; i < values.Length; i++)
        {
            if (float.IsNaN(floats[i])) Assert.True(float.IsNaN((float)back[i]), $"NaN 0x{values[i].Bits:X4} lost");
            else Assert.Equal(values[i], back[i]);
        }
        // NaN whose payload sits only in the low 16 bits must not truncate to infinity.
        Assert.True(float.IsNaN((float)(BFloat16)BitConverter.Int32BitsToSingle(0x7F80_0001)));
    }

    /// <summary>Oracle: the nearer of the two BF16 neighbours in double precision, ties to the even one.</summary>
    private static ushort NearestBFloat16(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        ushort down = (ushort)(bits >> 16);
        ushort up = (ushort)(down + 1);
        double distDown = Math.Abs((double)f - BitConverter.Int32BitsToSingle(down << 16));
        double upValue = BitConverter.Int32BitsToSingle(up << 16);
        double distUp = double.IsInfinity(upValue) ? Math.Abs((double)f - Math.Sign(f) * 3.402823669209385e38) : Math.Abs((double)f - upValue);
        if (distDown < distUp) return down;
        if (distUp < distDown) return up;
        return (down & 1) == 0 ? down : up;
    }

    [Property(MaxTest = 200)]
    public Property BFloat16Narrowing_RoundsToNearestEven_ScalarAndVector() =>
        Prop.ForAll(TestData.Seed.ToArbitrary(), seed =>
        {
            var random = new Random(seed);
            var x = new float[67];
            for (int i = 0; i < x.Length; i++) x[i] = BitConverter.Int32BitsToSingle(random.Next() & 0x7F7F_FFFF | (random.Next(2) << 31));
            var y = new BFloat16[x.Length];
            Conversions.ToBFloat16(x, y);
            for (int i = 0; i < x.Length; i++)
            {
                Assert.Equal(NearestBFloat16(x[i]), y[i].Bits);
                Assert.Equal(y[i], (BFloat16)x[i]);
            }
        });

    [Property(MaxTest = 200)]
    public Property HalfNarrowing_MatchesSystemHalfCast(int bitsSeed) =>
        Prop.ForAll(TestData.Seed.ToArbitrary(), seed =>
        {
            var random = new Random(seed ^ bitsSeed);
            var x = new float[37];
            for (int i = 0; i < x.Length; i++) x[i] = BitConverter.Int32BitsToSingle(random.Next() | (random.Next(2) << 31));
            var y = new Half[x.Length];
            Conversions.ToHalf(x, y);
            for (int i = 0; i < x.Length; i++)
                Assert.Equal(BitConverter.HalfToUInt16Bits((Half)x[i]), BitConverter.HalfToUInt16Bits(y[i]));
        });

    [Fact]
    public void MismatchedLengths_ThrowNamingDestination()
    {
        var e = Assert.Throws<ArgumentException>(() => Conversions.ToSingle(new Half[3], new float[2]));
        Assert.Equal("destination", e.ParamName);
    }
}
