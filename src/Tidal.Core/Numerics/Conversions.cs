using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Tidal.Core.Numerics;

/// <summary>
/// F16/BF16 ↔ F32 conversions: scalar bit rules, span conversions, and the 8-wide register widening that the
/// reference GEMV and attention use to read F16/BF16 weights and caches. Widening is exact; narrowing rounds to
/// nearest, ties to even.
/// </summary>
public static class Conversions
{
    /// <summary>F32 → BF16 bits: round to nearest even; NaN stays NaN with its quiet bit set.</summary>
    public static ushort FloatToBFloat16Bits(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & 0x7FFF_FFFFu) > 0x7F80_0000u) return (ushort)((bits >> 16) | 0x0040u);
        return (ushort)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }

    /// <summary>Widens <paramref name="source"/> into <paramref name="destination"/> (same length).</summary>
    public static void ToSingle(ReadOnlySpan<Half> source, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        TensorPrimitives.ConvertToSingle(source, destination);
    }

    /// <summary>Widens <paramref name="source"/> into <paramref name="destination"/> (same length).</summary>
    public static void ToSingle(ReadOnlySpan<BFloat16> source, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        ReadOnlySpan<ushort> bits = MemoryMarshal.Cast<BFloat16, ushort>(source);
        int i = 0;
        for (; i + 8 <= bits.Length; i += 8)
            WidenBFloat16(Vector128.Create(bits.Slice(i, 8))).CopyTo(destination.Slice(i));
        for (; i < bits.Length; i++) destination[i] = BitConverter.Int32BitsToSingle(bits[i] << 16);
    }

    /// <summary>Narrows with round-to-nearest-even (the <see cref="Half"/> cast rule).</summary>
    public static void ToHalf(ReadOnlySpan<float> source, Span<Half> destination)
    {
        CheckLengths(source.Length, destination.Length);
        TensorPrimitives.ConvertToHalf(source, destination);
    }

    /// <summary>Narrows with round-to-nearest-even; NaN stays NaN (see <see cref="FloatToBFloat16Bits"/>).</summary>
    public static void ToBFloat16(ReadOnlySpan<float> source, Span<BFloat16> destination)
    {
        CheckLengths(source.Length, destination.Length);
        Span<ushort> bits = MemoryMarshal.Cast<BFloat16, ushort>(destination);
        int i = 0;
        for (; i + 8 <= source.Length; i += 8)
        {
            Vector256<uint> u = Vector256.Create(source.Slice(i, 8)).AsUInt32();
            Vector256<uint> rounded = (u + Vector256.Create(0x7FFFu) + ((u >> 16) & Vector256<uint>.One)) >> 16;
            Vector256<uint> quietNan = (u >> 16) | Vector256.Create(0x0040u);
            Vector256<uint> isNan = Vector256.GreaterThan(u & Vector256.Create(0x7FFF_FFFFu), Vector256.Create(0x7F80_0000u));
            Vector256<uint> r = Vector256.ConditionalSelect(isNan, quietNan, rounded);
            Vector128.Narrow(r.GetLower(), r.GetUpper()).CopyTo(bits.Slice(i));
        }
        for (; i < source.Length; i++) bits[i] = FloatToBFloat16Bits(source[i]);
    }

    /// <summary>Widens 8 BF16 values held as raw bits: each becomes the upper half of a binary32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> WidenBFloat16(Vector128<ushort> bits)
    {
        if (Avx2.IsSupported) return (Avx2.ConvertToVector256Int32(bits).AsUInt32() << 16).AsSingle(); // vpmovzxwd: one instruction, not two halves and an insert
        (Vector128<uint> lo, Vector128<uint> hi) = Vector128.Widen(bits);
        return (Vector256.Create(lo, hi) << 16).AsSingle();
    }

    /// <summary>
    /// Widens 8 F16 values held as raw bits (exact, bit-identical to the <see cref="Half"/> → float cast).
    /// The magnitude bits are moved into binary32 position and multiplied by 2^112, which re-biases the exponent
    /// (15 → 127) and turns F16 subnormals into the right normal floats in one exact multiply; Inf/NaN get the
    /// all-ones exponent with their payload kept.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> WidenHalf(Vector128<ushort> bits)
    {
        if (Avx2.IsSupported)
        {
            // Sign-extended and shifted by 13, each value has its sign in bit 31 (copies of it in bits 30–28, masked
            // off) and its exponent and mantissa in binary32 position; the multiply by 2^112 keeps the sign, so there
            // is no separate sign step. The JIT emits 8 instructions per 8 values (the load folded into vpmovsxwd)
            // where the portable form takes 15; widening was most of the F16 GEMV's work.
            Vector256<uint> v = (Avx2.ConvertToVector256Int32(bits.AsInt16()).AsUInt32() << 13) & Vector256.Create(0x8FFF_E000u);
            Vector256<float> scaled = v.AsSingle() * Vector256.Create(5.192296858534828e33f); // 2^112
            Vector256<uint> exponent = v & Vector256.Create(0x0F80_0000u);
            Vector256<uint> infOrNan = Vector256.Equals(exponent, Vector256.Create(0x0F80_0000u));
            return Vector256.ConditionalSelect(infOrNan, v | Vector256.Create(0x7F80_0000u), scaled.AsUInt32()).AsSingle();
        }
        return WidenHalfPortable(bits);
    }

    /// <summary><see cref="WidenHalf"/> without AVX2 (and its oracle in the tests on machines with it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> WidenHalfPortable(Vector128<ushort> bits)
    {
        (Vector128<uint> lo, Vector128<uint> hi) = Vector128.Widen(bits);
        Vector256<uint> h = Vector256.Create(lo, hi);
        Vector256<uint> sign = (h & Vector256.Create(0x8000u)) << 16;
        Vector256<uint> magnitude = h & Vector256.Create(0x7FFFu);
        Vector256<uint> shifted = magnitude << 13;
        Vector256<float> finite = shifted.AsSingle() * Vector256.Create(5.192296858534828e33f); // 2^112
        Vector256<uint> special = shifted | Vector256.Create(0x7F80_0000u);
        Vector256<uint> isSpecial = Vector256.GreaterThanOrEqual(magnitude, Vector256.Create(0x7C00u));
        return (Vector256.ConditionalSelect(isSpecial, special, finite.AsUInt32()) | sign).AsSingle();
    }

    /// <summary>Loads 8 consecutive elements of <paramref name="source"/> from <paramref name="index"/> as floats.</summary>
    /// <remarks>The JIT folds the type tests away for each instantiation.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8<T>(ReadOnlySpan<T> source, int index) where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            return Vector256.Create(MemoryMarshal.Cast<T, float>(source).Slice(index, 8));
        if (typeof(T) == typeof(Half))
            return WidenHalf(Vector128.Create(MemoryMarshal.Cast<T, ushort>(source).Slice(index, 8)));
        if (typeof(T) == typeof(BFloat16))
            return WidenBFloat16(Vector128.Create(MemoryMarshal.Cast<T, ushort>(source).Slice(index, 8)));
        throw new NotSupportedException($"{typeof(T).Name} is not a Tidal element type.");
    }

    /// <summary>Loads up to 8 elements from <paramref name="index"/>; lanes past the end of the span are +0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Load8Padded<T>(ReadOnlySpan<T> source, int index) where T : unmanaged
    {
        if (index + 8 <= source.Length) return Load8(source, index);
        Span<T> padded = stackalloc T[8];
        padded.Clear();
        source.Slice(index).CopyTo(padded);
        return Load8<T>(padded, 0);
    }

    /// <summary>One element as a float (exact widening).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToSingle<T>(T value) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return Unsafe.As<T, float>(ref value);
        if (typeof(T) == typeof(Half)) return (float)Unsafe.As<T, Half>(ref value);
        if (typeof(T) == typeof(BFloat16)) return (float)Unsafe.As<T, BFloat16>(ref value);
        throw new NotSupportedException($"{typeof(T).Name} is not a Tidal element type.");
    }

    /// <summary>One float narrowed to <typeparamref name="T"/> (round to nearest even).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T FromSingle<T>(float value) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return Unsafe.As<float, T>(ref value);
        if (typeof(T) == typeof(Half)) { Half h = (Half)value; return Unsafe.As<Half, T>(ref h); }
        if (typeof(T) == typeof(BFloat16)) { BFloat16 b = (BFloat16)value; return Unsafe.As<BFloat16, T>(ref b); }
        throw new NotSupportedException($"{typeof(T).Name} is not a Tidal element type.");
    }

    /// <summary>Widens any element span into floats.</summary>
    public static void ToSingle<T>(ReadOnlySpan<T> source, Span<float> destination) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) { CheckLengths(source.Length, destination.Length); MemoryMarshal.Cast<T, float>(source).CopyTo(destination); }
        else if (typeof(T) == typeof(Half)) ToSingle(MemoryMarshal.Cast<T, Half>(source), destination);
        else if (typeof(T) == typeof(BFloat16)) ToSingle(MemoryMarshal.Cast<T, BFloat16>(source), destination);
        else throw new NotSupportedException($"{typeof(T).Name} is not a Tidal element type.");
    }

    /// <summary>Narrows floats into any element span.</summary>
    public static void FromSingle<T>(ReadOnlySpan<float> source, Span<T> destination) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) { CheckLengths(source.Length, destination.Length); source.CopyTo(MemoryMarshal.Cast<T, float>(destination)); }
        else if (typeof(T) == typeof(Half)) ToHalf(source, MemoryMarshal.Cast<T, Half>(destination));
        else if (typeof(T) == typeof(BFloat16)) ToBFloat16(source, MemoryMarshal.Cast<T, BFloat16>(destination));
        else throw new NotSupportedException($"{typeof(T).Name} is not a Tidal element type.");
    }

    private static void CheckLengths(int source, int destination)
    {
        if (source != destination)
            throw new ArgumentException($"destination has {destination} elements but source has {source}.", "destination");
    }
}
