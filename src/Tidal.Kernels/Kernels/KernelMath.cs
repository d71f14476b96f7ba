using ILGPU;
using ILGPU.Runtime.Cuda;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Arithmetic that rounds exactly as Tidal.Core's reference does. On CUDA each operation is one PTX instruction with
/// an explicit rounding mode (fma.rn, mul.rn, add.rn, sub.rn), so ptxas can neither contract a multiply and an add into
/// an fma nor split an fma; on ILGPU's CPU accelerator the same C# operations run. Exp and Log are TidalMath's
/// algorithms, operation for operation.
/// </summary>
public static class KernelMath
{
    /// <summary>fma.rn.f32.</summary>
    public static float Fma(float a, float b, float c)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("fma.rn.f32 %0, %1, %2, %3;", out float r, a, b, c);
            return r;
        }
        return SoftFma(a, b, c);
    }

    /// <summary>
    /// a·b + c rounded once, without an fma instruction (ILGPU compiles every branch of a kernel for PTX, and
    /// MathF.FusedMultiplyAdd has no PTX form, so the CPU accelerator's path must be plain arithmetic). The product of
    /// two floats is exact in double; TwoSum gives the double sum and its exact error; rounding that sum to odd (move
    /// one ulp towards the error when inexact and even) and then to float is correctly rounded, because double carries
    /// more than 24 + 2 bits (Boldo and Melquiond, "Emulation of FMA and correctly rounded sums", 2008).
    /// </summary>
    public static float SoftFma(float a, float b, float c)
    {
        double p = (double)a * b, q = c;
        double s = p + q;
        double bp = s - p;
        double e = (p - (s - bp)) + (q - bp);
        if (e != 0 && !double.IsInfinity(s) && !double.IsNaN(e))
        {
            ulong bits = Interop.FloatAsInt(s);
            if ((bits & 1) == 0) bits = (s > 0) == (e > 0) ? bits + 1 : bits - 1;
            s = Interop.IntAsFloat(bits);
        }
        return (float)s;
    }

    /// <summary>mul.rn.f32 (never contracted into an fma).</summary>
    public static float Mul(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("mul.rn.f32 %0, %1, %2;", out float r, a, b);
            return r;
        }
        return a * b;
    }

    /// <summary>add.rn.f32.</summary>
    public static float Add(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("add.rn.f32 %0, %1, %2;", out float r, a, b);
            return r;
        }
        return a + b;
    }

    /// <summary>sub.rn.f32.</summary>
    public static float Sub(float a, float b)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("sub.rn.f32 %0, %1, %2;", out float r, a, b);
            return r;
        }
        return a - b;
    }

    /// <summary>Tidal.Core.Numerics.TidalMath.Exp, operation for operation, its branches turned into selects: every
    /// path's operations run and the result picks the one the reference takes, so the bits are the same, and a warp
    /// takes no divergent branches (attention's softmax runs one exp per score).</summary>
    public static float Exp(float x)
    {
        float n = Sub(Fma(x, 1.44269504088896341f, 12582912f), 12582912f);
        float r = Fma(n, -0.693145751953125f, x);
        r = Fma(n, -1.42860682030941723212e-6f, r);
        float p = 1f / 5040f;
        p = Fma(p, r, 1f / 720f);
        p = Fma(p, r, 1f / 120f);
        p = Fma(p, r, 1f / 24f);
        p = Fma(p, r, 1f / 6f);
        p = Fma(p, r, 0.5f);
        p = Fma(p, r, 1f);
        p = Fma(p, r, 1f);
        int e = (int)n; // NaN and out-of-range n give some int (saturated on both backends); the last selects drop it
        bool tiny = e < -126;
        float scaled = Mul(p, 5.42101086242752217e-20f);
        p = tiny ? scaled : p;
        e = tiny ? e + 64 : e;
        bool huge = e > 127;
        float doubled = Mul(p, 2f);
        p = huge ? doubled : p;
        e = huge ? e - 1 : e;
        float y = Mul(p, Interop.IntAsFloat(unchecked((uint)((e + 127) << 23))));
        y = x > 88.72283935546875f ? float.PositiveInfinity : y;
        return x > -104f ? y : float.IsNaN(x) ? x : 0f;
    }

    /// <summary>Tidal.Core.Numerics.TidalMath.Log, operation for operation.</summary>
    public static float Log(float x)
    {
        if (float.IsNaN(x) || x < 0f) return float.NaN;
        if (x == 0f) return float.NegativeInfinity;
        if (x == float.PositiveInfinity) return x;
        int bias = 0;
        if (x < 1.17549435e-38f) { x = Mul(x, 18446744073709551616f); bias = -64; }
        int bits = (int)Interop.FloatAsInt(x);
        int e = ((bits >> 23) & 0xFF) - 127 + bias;
        float m = Interop.IntAsFloat((uint)((bits & 0x007F_FFFF) | 0x3F80_0000));
        if (m > 1.41421356f) { m = Mul(m, 0.5f); e += 1; }
        float f = Sub(m, 1f);
        float s = f / Add(2f, f);
        float z = Mul(s, s);
        float q = Fma(z, 1f / 9f, 1f / 7f);
        q = Fma(q, z, 1f / 5f);
        q = Fma(q, z, 1f / 3f);
        float twoS = Add(s, s);
        float logM = Fma(twoS, Mul(z, q), twoS);
        float fe = e;
        return Fma(fe, 0.693145751953125f, Fma(fe, 1.42860682030941723212e-6f, logM));
    }

    /// <summary>SiLU(x) = x / (1 + e^−x).</summary>
    public static float Silu(float x) => x / Add(1f, Exp(-x));

    /// <summary>
    /// F16 bits → float, exactly: cvt.f32.f16 on CUDA; elsewhere the magnitude moves into binary32 position and one
    /// exact multiply by 2^112 re-biases the exponent (subnormals included), Inf/NaN keeping their payload.
    /// </summary>
    public static float HalfToFloat(uint bits)
    {
        if (CudaAsm.IsSupported)
        {
            // The hardware conversion is exact too, and one instruction.
            CudaAsm.Emit("cvt.f32.f16 %0, %1;", out float r, (ushort)bits);
            return r;
        }
        uint sign = (bits & 0x8000u) << 16, magnitude = bits & 0x7FFFu;
        if (magnitude >= 0x7C00u) return Interop.IntAsFloat(sign | 0x7F80_0000u | ((magnitude & 0x3FFu) << 13));
        return Interop.IntAsFloat(Interop.FloatAsInt(Mul(Interop.IntAsFloat(magnitude << 13), 5.192296858534828e33f)) | sign);
    }

    /// <summary>BF16 bits → float (exact).</summary>
    public static float BFloat16ToFloat(uint bits) => Interop.IntAsFloat((bits & 0xFFFF) << 16);

    /// <summary>float → F16 bits, round to nearest even (System.Half's rule), NaN kept quiet, overflow to ∞.</summary>
    public static ushort FloatToHalf(float value)
    {
        uint x = Interop.FloatAsInt(value);
        uint sign = (x >> 16) & 0x8000u, magnitude = x & 0x7FFF_FFFFu;
        if (magnitude >= 0x7F80_0000u)
            return (ushort)(sign | 0x7C00u | (magnitude > 0x7F80_0000u ? 0x200u | ((magnitude >> 13) & 0x3FFu) : 0u));
        if (magnitude >= 0x477F_F000u) return (ushort)(sign | 0x7C00u); // ≥ 65520 rounds past the largest half
        if (magnitude < 0x3880_0000u)
        {
            // Subnormal result: m·2^-24 with m = round-half-even(|value|·2^24); the scaling is exact, and adding then
            // subtracting 2^23 rounds to an integer under round-to-nearest-even.
            float scaled = Mul(Interop.IntAsFloat(magnitude), 16777216f);
            float rounded = Sub(Add(scaled, 8388608f), 8388608f);
            return (ushort)(sign | (uint)rounded);
        }
        uint rebased = magnitude - 0x3800_0000u;
        return (ushort)(sign | ((rebased + 0xFFFu + ((rebased >> 13) & 1u)) >> 13));
    }

    /// <summary>Folds a lane's 8 slots in the feature-axis order: ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)).</summary>
    public static float FoldSlots(in Vec8 s) => Add(Add(Add(s.F0, s.F4), Add(s.F2, s.F6)), Add(Add(s.F1, s.F5), Add(s.F3, s.F7)));

    /// <summary>
    /// Folds the 8 channels of a slot accumulator over the 32 lanes (token slots) by a transposed butterfly: at the xor-16,
    /// 8 and 4 steps a lane keeps half of its channels (by lane bits 4, 3, 2) and adds the partner's copy of those; the
    /// xor-2 and 1 steps fold the one channel left. Each sum is L[i] + L[i + h] of the canonical halving (addition
    /// commutes), so the bits equal eight separate folds, in 9 shuffles instead of 40. Returns channel
    /// <see cref="FoldedChannel"/>(lane)'s total.
    /// </summary>
    public static float FoldChannels(in Vec8 v, int lane)
    {
        bool b4 = (lane & 16) != 0, b3 = (lane & 8) != 0, b2 = (lane & 4) != 0;
        // xor 16: keep channels 4..7 on high lanes, 0..3 on low ones.
        float a0 = KernelMath.Add(b4 ? v.F4 : v.F0, Warp.ShuffleXor(b4 ? v.F0 : v.F4, 16));
        float a1 = KernelMath.Add(b4 ? v.F5 : v.F1, Warp.ShuffleXor(b4 ? v.F1 : v.F5, 16));
        float a2 = KernelMath.Add(b4 ? v.F6 : v.F2, Warp.ShuffleXor(b4 ? v.F2 : v.F6, 16));
        float a3 = KernelMath.Add(b4 ? v.F7 : v.F3, Warp.ShuffleXor(b4 ? v.F3 : v.F7, 16));
        // xor 8: keep the upper two of those on lanes with bit 3.
        float c0 = KernelMath.Add(b3 ? a2 : a0, Warp.ShuffleXor(b3 ? a0 : a2, 8));
        float c1 = KernelMath.Add(b3 ? a3 : a1, Warp.ShuffleXor(b3 ? a1 : a3, 8));
        // xor 4: keep the upper one on lanes with bit 2; then fold it over the last 4 lanes.
        return FoldFourLanes(KernelMath.Add(b2 ? c1 : c0, Warp.ShuffleXor(b2 ? c0 : c1, 4)));
    }

    /// <summary>The channel whose total <see cref="FoldChannels"/> leaves on <paramref name="lane"/>.</summary>
    public static int FoldedChannel(int lane) => ((lane >> 4) & 1) * 4 + ((lane >> 3) & 1) * 2 + ((lane >> 2) & 1);

    /// <summary>Folds the 32 lanes' values by halving (xor 16, 8, 4, 2, 1); every lane ends with the sum. Written out
    /// step by step: ILGPU does not unroll loops, and a loop would cost a compare, a shift and a branch per step.</summary>
    public static float FoldLanes(float v)
    {
        v = Add(v, Warp.ShuffleXor(v, 16));
        v = Add(v, Warp.ShuffleXor(v, 8));
        return FoldFourLanes(Add(v, Warp.ShuffleXor(v, 4)));
    }

    /// <summary>The halving's last two steps (xor 2, then 1): every lane ends with the sum of its group of four lanes.</summary>
    public static float FoldFourLanes(float v)
    {
        v = Add(v, Warp.ShuffleXor(v, 2));
        return Add(v, Warp.ShuffleXor(v, 1));
    }

    /// <summary>The order-preserving key of Tidal.Core.Reference.TopK.OrderedKey, without branches (selects only):
    /// negative values flip every bit, the others set the sign bit; NaN is 0 and both zeros are 0x8000_0000.</summary>
    public static uint OrderedKey(float value)
    {
        uint bits = Interop.FloatAsInt(value), magnitude = bits & 0x7FFF_FFFFu;
        uint key = bits ^ ((uint)((int)bits >> 31) | 0x8000_0000u);
        key = magnitude == 0 ? 0x8000_0000u : key;
        return magnitude > 0x7F80_0000u ? 0u : key;
    }
}

/// <summary>Eight floats: one 16-byte chunk of F16/BF16 (or 32 bytes of F32) widened, or 8 accumulators.</summary>
public struct Vec8
{
    /// <summary>Element 0.</summary>
    public float F0;
    /// <summary>Element 1.</summary>
    public float F1;
    /// <summary>Element 2.</summary>
    public float F2;
    /// <summary>Element 3.</summary>
    public float F3;
    /// <summary>Element 4.</summary>
    public float F4;
    /// <summary>Element 5.</summary>
    public float F5;
    /// <summary>Element 6.</summary>
    public float F6;
    /// <summary>Element 7.</summary>
    public float F7;

    /// <summary>this[e] = fma(a[e], b[e], this[e]) for every e.</summary>
    public void Fma(in Vec8 a, in Vec8 b)
    {
        F0 = KernelMath.Fma(a.F0, b.F0, F0);
        F1 = KernelMath.Fma(a.F1, b.F1, F1);
        F2 = KernelMath.Fma(a.F2, b.F2, F2);
        F3 = KernelMath.Fma(a.F3, b.F3, F3);
        F4 = KernelMath.Fma(a.F4, b.F4, F4);
        F5 = KernelMath.Fma(a.F5, b.F5, F5);
        F6 = KernelMath.Fma(a.F6, b.F6, F6);
        F7 = KernelMath.Fma(a.F7, b.F7, F7);
    }

    /// <summary>this[e] = fma(p, b[e], this[e]) for every e.</summary>
    public void Fma(float p, in Vec8 b)
    {
        F0 = KernelMath.Fma(p, b.F0, F0);
        F1 = KernelMath.Fma(p, b.F1, F1);
        F2 = KernelMath.Fma(p, b.F2, F2);
        F3 = KernelMath.Fma(p, b.F3, F3);
        F4 = KernelMath.Fma(p, b.F4, F4);
        F5 = KernelMath.Fma(p, b.F5, F5);
        F6 = KernelMath.Fma(p, b.F6, F6);
        F7 = KernelMath.Fma(p, b.F7, F7);
    }
}

/// <summary>16 bytes as four uints: the widest load ILGPU emits (ld.global.v4.u32).</summary>
public struct U4
{
    /// <summary>Bytes 0–3.</summary>
    public uint X;
    /// <summary>Bytes 4–7.</summary>
    public uint Y;
    /// <summary>Bytes 8–11.</summary>
    public uint Z;
    /// <summary>Bytes 12–15.</summary>
    public uint W;
}

/// <summary>16 bytes as four floats.</summary>
public struct F4
{
    /// <summary>Element 0.</summary>
    public float X;
    /// <summary>Element 1.</summary>
    public float Y;
    /// <summary>Element 2.</summary>
    public float Z;
    /// <summary>Element 3.</summary>
    public float W;
}
