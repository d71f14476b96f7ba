using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Tidal.Core.Numerics;

/// <summary>
/// The transcendental functions of every softmax, log-sum-exp and SiLU in Tidal, written only with IEEE-exact
/// operations (fused multiply-add, add, multiply, divide, bit moves) so that the CPU reference, its SIMD form and the
/// GPU kernels (which use <c>fma.rn.f32</c>, never <c>ex2.approx</c>) produce the same bits.
/// </summary>
/// <remarks>
/// Accuracy: <see cref="Exp(float)"/> is within 2 ulp of e^x for normal results, <see cref="Log"/> within 2 ulp
/// (tested against double precision). Exactness across backends matters more here than the last ulp.
/// </remarks>
public static class TidalMath
{
    private const float Log2E = 1.44269504088896341f;
    private const float Ln2Hi = 0.693145751953125f;          // 0x3F317200: few significant bits, so n·Ln2Hi is exact
    private const float Ln2Lo = 1.42860682030941723212e-6f;  // ln 2 − Ln2Hi
    private const float RoundShifter = 12582912f;            // 1.5·2^23: adding it rounds to an integer (ties to even)
    private const float ExpOverflow = 88.72283935546875f;    // largest x with e^x finite in binary32
    private const float ExpUnderflow = -104f;                // e^-104 < half the smallest subnormal
    private const float TwoPow64 = 18446744073709551616f;
    private const float TwoPowMinus64 = 5.42101086242752217e-20f;

    /// <summary>Fused multiply-add, rounded once. Every Tidal reduction accumulates through this.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Fma(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);

    /// <summary>
    /// e^x. Range reduction x = n·ln2 + r with |r| ≤ ln2/2 (Cody–Waite, two-part ln2), then e^r by its degree-7
    /// Taylor polynomial in Horner form with fma (truncation error &lt; 6e-9 relative), then scaling by 2^n through the
    /// exponent bits (in two exact steps where the result is subnormal or n = 128).
    /// </summary>
    public static float Exp(float x)
    {
        if (!(x > ExpUnderflow)) return float.IsNaN(x) ? x : 0f;
        if (x > ExpOverflow) return float.PositiveInfinity;
        float n = Fma(x, Log2E, RoundShifter) - RoundShifter;
        float r = Fma(n, -Ln2Hi, x);
        r = Fma(n, -Ln2Lo, r);
        float p = ExpPolynomial(r);
        int e = (int)n;
        if (e < -126) { p *= TwoPowMinus64; e += 64; }
        if (e > 127) { p *= 2f; e -= 1; }
        return p * BitConverter.Int32BitsToSingle((e + 127) << 23);
    }

    /// <summary>e^x for 8 lanes; bit-identical to <see cref="Exp(float)"/> on each lane.</summary>
    public static Vector256<float> Exp(Vector256<float> x)
    {
        Vector256<float> shifter = Vector256.Create(RoundShifter);
        Vector256<float> n = Vector256.FusedMultiplyAdd(x, Vector256.Create(Log2E), shifter) - shifter;
        Vector256<float> r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Hi), x);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Lo), r);
        Vector256<float> p = ExpPolynomial(r);
        // n is garbage outside the finite range; those lanes are replaced below, so clamp it to keep the int math defined.
        Vector256<int> e = Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(n, Vector256.Create(-200f)), Vector256.Create(200f)));
        Vector256<int> low = Vector256.LessThan(e, Vector256.Create(-126));
        p = Vector256.ConditionalSelect(low.AsSingle(), p * Vector256.Create(TwoPowMinus64), p);
        e = Vector256.ConditionalSelect(low, e + Vector256.Create(64), e);
        Vector256<int> high = Vector256.GreaterThan(e, Vector256.Create(127));
        p = Vector256.ConditionalSelect(high.AsSingle(), p * Vector256.Create(2f), p);
        e = Vector256.ConditionalSelect(high, e - Vector256<int>.One, e);
        Vector256<float> result = p * ((e + Vector256.Create(127)) << 23).AsSingle();
        result = Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256.Create(ExpUnderflow)), result, Vector256<float>.Zero);
        result = Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256.Create(ExpOverflow)), Vector256.Create(float.PositiveInfinity), result);
        return Vector256.ConditionalSelect(Vector256.Equals(x, x), result, x); // NaN in, NaN out
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ExpPolynomial(float r)
    {
        float p = 1f / 5040f;
        p = Fma(p, r, 1f / 720f);
        p = Fma(p, r, 1f / 120f);
        p = Fma(p, r, 1f / 24f);
        p = Fma(p, r, 1f / 6f);
        p = Fma(p, r, 0.5f);
        p = Fma(p, r, 1f);
        return Fma(p, r, 1f);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> ExpPolynomial(Vector256<float> r)
    {
        Vector256<float> p = Vector256.Create(1f / 5040f);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f / 720f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f / 120f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f / 24f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1f / 6f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(0.5f));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
        return Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
    }

    /// <summary>
    /// Natural logarithm. x = m·2^e with m in [√½, √2); log(m) = 2·atanh(s), s = (m−1)/(m+1), |s| ≤ 0.1716, by the
    /// odd series to s^9 (truncation &lt; 1e-9); then + e·ln2 in two parts. log(0) = −∞, log(x&lt;0) = NaN.
    /// </summary>
    public static float Log(float x)
    {
        if (float.IsNaN(x) || x < 0f) return float.NaN;
        if (x == 0f) return float.NegativeInfinity;
        if (float.IsPositiveInfinity(x)) return x;
        int bias = 0;
        if (x < 1.17549435e-38f) { x *= TwoPow64; bias = -64; } // subnormal: scale into the normal range, exactly
        int bits = BitConverter.SingleToInt32Bits(x);
        int e = ((bits >> 23) & 0xFF) - 127 + bias;
        float m = BitConverter.Int32BitsToSingle((bits & 0x007F_FFFF) | 0x3F80_0000); // [1, 2)
        if (m > 1.41421356f) { m *= 0.5f; e += 1; }
        float f = m - 1f;
        float s = f / (2f + f);
        float z = s * s;
        float q = Fma(z, 1f / 9f, 1f / 7f);
        q = Fma(q, z, 1f / 5f);
        q = Fma(q, z, 1f / 3f);
        float twoS = s + s;
        float logM = Fma(twoS, z * q, twoS);
        float fe = e;
        return Fma(fe, Ln2Hi, Fma(fe, Ln2Lo, logM));
    }

    /// <summary>SiLU(x) = x / (1 + e^−x).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Silu(float x) => x / (1f + Exp(-x));

    /// <summary>SiLU for 8 lanes; bit-identical to <see cref="Silu(float)"/> on each lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Silu(Vector256<float> x) => x / (Vector256<float>.One + Exp(-x));
}
