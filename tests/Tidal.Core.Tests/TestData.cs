using FsCheck;
using FsCheck.Fluent;

namespace Tidal.Core.Tests;

/// <summary>Seeded random data and FsCheck generators shared by the property tests.</summary>
public static class TestData
{
    /// <summary>Unit roundoff of binary32.</summary>
    public const double Eps = 5.9604644775390625e-8;

    public static float[] Floats(Random random, int n, float scale = 1f)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)((random.NextDouble() * 2 - 1) * scale);
        return x;
    }

    public static Half[] Halves(Random random, int n, float scale = 1f) => Floats(random, n, scale).Select(f => (Half)f).ToArray();

    public static BFloat16[] BFloat16s(Random random, int n, float scale = 1f) => Floats(random, n, scale).Select(f => (BFloat16)f).ToArray();

    /// <summary>An arbitrary seed; the test draws its data from <c>new Random(seed)</c>, so a failing seed replays.</summary>
    public static Gen<int> Seed => Gen.Choose(0, int.MaxValue - 1);

    /// <summary>
    /// Error bound of a canonical-order dot/sum of n terms: each of the 32×8 accumulators takes ceil(n/256)
    /// sequential roundings, then 3 + 5 fold levels and one final operation: γ_m·Σ|terms| with
    /// m = ceil(n/256) + 9 (Higham, recursive summation), doubled for safety.
    /// </summary>
    public static double DotBound(int n, double sumAbs) => 2 * ((n + 255) / 256 + 9) * Eps * sumAbs + 1e-30;

    /// <summary>First differing element with both values, for failure messages (llm.c's check_tensor spirit).</summary>
    public static void AssertBitwiseEqual(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}: element {i} differs: expected {expected[i]:R} (0x{BitConverter.SingleToInt32Bits(expected[i]):X8}), got {actual[i]:R} (0x{BitConverter.SingleToInt32Bits(actual[i]):X8}).");
    }

    public static void AssertClose(ReadOnlySpan<double> expected, ReadOnlySpan<float> actual, ReadOnlySpan<double> bound, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (!(Math.Abs(expected[i] - actual[i]) <= bound[i]))
                Assert.Fail($"{what}: element {i}: expected {expected[i]:R}, got {actual[i]:R}, |diff| {Math.Abs(expected[i] - actual[i]):E3} > bound {bound[i]:E3}.");
    }
}
