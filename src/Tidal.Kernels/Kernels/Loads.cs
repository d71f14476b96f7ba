using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>Element formats of weights and caches on the device, passed to kernels as an int.</summary>
public static class Format
{
    /// <summary>binary32.</summary>
    public const int F32 = 0;
    /// <summary>binary16.</summary>
    public const int F16 = 1;
    /// <summary>bfloat16.</summary>
    public const int BF16 = 2;
}

/// <summary>Chunk loads: 8 consecutive elements as floats, with 16-byte (F16/BF16) or 2×16-byte (F32) loads.</summary>
public static class Loads
{
    /// <summary>Whether rows of <paramref name="length"/> elements of <paramref name="raw"/> and <paramref name="x"/> can be read
    /// as whole 16-byte chunks (<see cref="Chunk"/>): both views 16-byte aligned, the length a multiple of 8.</summary>
    public static bool ChunksAligned(int length, ArrayView<byte> raw, ArrayView<float> x) =>
        length % 8 == 0 && IsAligned(raw) && IsAligned(x);

    /// <summary>Whether a view starts on a 16-byte boundary.</summary>
    public static bool IsAligned<T>(ArrayView<T> view) where T : unmanaged => view.LoadEffectiveAddressAsPtr() % 16 == 0;

    /// <summary>
    /// Elements [8·chunk, 8·chunk + 8) of <paramref name="raw"/> (a byte view of F32/F16/BF16 data whose base is
    /// 16-byte aligned), widened exactly.
    /// </summary>
    public static Vec8 Chunk(ArrayView<byte> raw, long chunk, int format)
    {
        var v = new Vec8();
        if (format == Format.F32)
        {
            ArrayView<F4> f = raw.Cast<F4>();
            F4 a = f[2 * chunk], b = f[2 * chunk + 1];
            v.F0 = a.X; v.F1 = a.Y; v.F2 = a.Z; v.F3 = a.W;
            v.F4 = b.X; v.F5 = b.Y; v.F6 = b.Z; v.F7 = b.W;
            return v;
        }
        U4 u = raw.Cast<U4>()[chunk];
        return format == Format.F16 ? WidenF16(u) : WidenBF16(u);
    }

    /// <summary>Eight binary16 values (a 16-byte chunk, lowest element in the low half of X) as floats, exactly.</summary>
    public static Vec8 WidenF16(U4 u)
    {
        var v = new Vec8();
        v.F0 = KernelMath.HalfToFloat(u.X & 0xFFFF); v.F1 = KernelMath.HalfToFloat(u.X >> 16);
        v.F2 = KernelMath.HalfToFloat(u.Y & 0xFFFF); v.F3 = KernelMath.HalfToFloat(u.Y >> 16);
        v.F4 = KernelMath.HalfToFloat(u.Z & 0xFFFF); v.F5 = KernelMath.HalfToFloat(u.Z >> 16);
        v.F6 = KernelMath.HalfToFloat(u.W & 0xFFFF); v.F7 = KernelMath.HalfToFloat(u.W >> 16);
        return v;
    }

    /// <summary>Eight bfloat16 values (a 16-byte chunk) as floats, exactly.</summary>
    public static Vec8 WidenBF16(U4 u)
    {
        var v = new Vec8();
        v.F0 = KernelMath.BFloat16ToFloat(u.X); v.F1 = KernelMath.BFloat16ToFloat(u.X >> 16);
        v.F2 = KernelMath.BFloat16ToFloat(u.Y); v.F3 = KernelMath.BFloat16ToFloat(u.Y >> 16);
        v.F4 = KernelMath.BFloat16ToFloat(u.Z); v.F5 = KernelMath.BFloat16ToFloat(u.Z >> 16);
        v.F6 = KernelMath.BFloat16ToFloat(u.W); v.F7 = KernelMath.BFloat16ToFloat(u.W >> 16);
        return v;
    }

    /// <summary>
    /// Elements [8·chunk, 8·chunk + 8) of the row of <paramref name="length"/> elements starting at element
    /// <paramref name="rowStart"/>, loaded one by one (no alignment needed), zero past the row's end.
    /// </summary>
    public static Vec8 ChunkPadded(ArrayView<byte> raw, long rowStart, long chunk, int length, int format)
    {
        long i = chunk * 8;
        var v = new Vec8();
        v.F0 = i < length ? Element(raw, rowStart + i, format) : 0f;
        v.F1 = i + 1 < length ? Element(raw, rowStart + i + 1, format) : 0f;
        v.F2 = i + 2 < length ? Element(raw, rowStart + i + 2, format) : 0f;
        v.F3 = i + 3 < length ? Element(raw, rowStart + i + 3, format) : 0f;
        v.F4 = i + 4 < length ? Element(raw, rowStart + i + 4, format) : 0f;
        v.F5 = i + 5 < length ? Element(raw, rowStart + i + 5, format) : 0f;
        v.F6 = i + 6 < length ? Element(raw, rowStart + i + 6, format) : 0f;
        v.F7 = i + 7 < length ? Element(raw, rowStart + i + 7, format) : 0f;
        return v;
    }

    /// <summary>One element of F32/F16/BF16 data, widened.</summary>
    public static float Element(ArrayView<byte> raw, long index, int format)
    {
        if (format == Format.F32) return raw.Cast<float>()[index];
        uint bits = raw.Cast<ushort>()[index];
        return format == Format.F16 ? KernelMath.HalfToFloat(bits) : KernelMath.BFloat16ToFloat(bits);
    }

    /// <summary>Elements [8·chunk, 8·chunk + 8) of an F32 vector of <paramref name="length"/> elements, zero past the end.</summary>
    public static Vec8 Activations(ArrayView<float> x, long offset, long chunk, int length)
    {
        long i = chunk * 8;
        var v = new Vec8();
        v.F0 = i < length ? x[offset + i] : 0f;
        v.F1 = i + 1 < length ? x[offset + i + 1] : 0f;
        v.F2 = i + 2 < length ? x[offset + i + 2] : 0f;
        v.F3 = i + 3 < length ? x[offset + i + 3] : 0f;
        v.F4 = i + 4 < length ? x[offset + i + 4] : 0f;
        v.F5 = i + 5 < length ? x[offset + i + 5] : 0f;
        v.F6 = i + 6 < length ? x[offset + i + 6] : 0f;
        v.F7 = i + 7 < length ? x[offset + i + 7] : 0f;
        return v;
    }
}
