using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Tidal.Core.Numerics;

/// <summary>
/// Tidal's canonical reduction orders. Floating-point sums depend on their order, and TensorPrimitives' Sum/Dot
/// change order with the machine's widest vector unit, so every reduction Tidal's reference and kernels share follows
/// one of the two fixed orders below, on every machine and backend.
/// </summary>
/// <remarks>
/// <para><b>Feature axis</b> (dot products, sums over a vector's elements: GEMV rows, q·k, RMSNorm, Quest bounds):
/// element i goes to lane (i / 8) mod 32 and slot i mod 8. Each (lane, slot) accumulator starts at +0 and takes its
/// elements in ascending i with one fused multiply-add each (a sum adds x·1, which is the same bits). Each lane then
/// folds its 8 slots by halving (s[e] += s[e+4]; s[e] += s[e+2]; s[e] += s[e+1]) and the 32 lane results fold by
/// halving (L[l] += L[l+16], +8, +4, +2, +1). This is a warp of 32 GPU lanes, each loading 16 bytes (8 F16 or BF16
/// values) per step, reducing in registers, then a shuffle-xor butterfly (which leaves the same sum in every lane).</para>
/// <para>Attention scores (q·k over a head's d channels) use the same order with <see cref="ScoreLanes"/> lanes instead of
/// 32: a few GPU lanes per token, each taking several chunks by fused multiply-adds, fold far fewer partial sums per
/// byte of K than one chunk per lane would.</para>
/// <para><b>Token axis</b> (over the positions of a KV cache or the entries of an index list: softmax denominators,
/// attention outputs, log-sum-exp): entry j goes to slot j mod 32, slots accumulate in ascending j from +0, then fold
/// by halving from 16 to 1.</para>
/// <para>Lanes or slots that receive nothing hold +0, and x + (+0) = x for every x an accumulator can hold (an
/// accumulator started at +0 never becomes −0 under round-to-nearest), so a kernel may skip empty lanes and start the
/// fold at the smallest power of two that covers the used lanes: the bits do not change.</para>
/// </remarks>
public static class Reduction
{
    /// <summary>Lanes of the feature-axis order (one warp).</summary>
    public const int Lanes = 32;
    /// <summary>Consecutive elements per lane and step in the feature-axis order (16 bytes of F16).</summary>
    public const int Width = 8;
    /// <summary>Slots of the token-axis order.</summary>
    public const int Slots = 32;
    /// <summary>Lanes of the attention-score order (<see cref="Dot{TA}(ReadOnlySpan{TA}, ReadOnlySpan{float}, int)"/>).</summary>
    public const int ScoreLanes = 4;

    /// <summary>Chunks of <see cref="Width"/> elements that <paramref name="length"/> elements take (the last may be partial).</summary>
    public static int Chunks(int length) => (length + Width - 1) / Width;

    /// <summary>Σ a[i]·b[i] in the feature-axis order; <paramref name="a"/> may be F32, F16 or BF16.</summary>
    public static float Dot<TA>(ReadOnlySpan<TA> a, ReadOnlySpan<float> b) where TA : unmanaged => Dot(a, b, Lanes);

    /// <summary>Σ a[i]·b[i] in the feature-axis order over <paramref name="lanes"/> lanes (a power of two, at most 32).</summary>
    public static float Dot<TA>(ReadOnlySpan<TA> a, ReadOnlySpan<float> b, int lanes) where TA : unmanaged
    {
        if (a.Length != b.Length)
            throw new ArgumentException($"b has {b.Length} elements but a has {a.Length}.", nameof(b));
        if (lanes < 1 || lanes > Lanes || (lanes & (lanes - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(lanes), lanes, $"must be a power of two from 1 to {Lanes}.");
        if (lanes == 4) return DotFourLanes(a, b);
        int chunks = Chunks(a.Length);
        Span<Vector256<float>> acc = stackalloc Vector256<float>[Lanes];
        acc.Clear(); // lanes past the used ones fold in as +0 (see FoldLanes)
        int c = WholeBlocks(a, b, lanes, acc);
        for (; c < chunks; c++)
        {
            ref Vector256<float> lane = ref acc[c & (lanes - 1)];
            lane = Vector256.FusedMultiplyAdd(Conversions.Load8Padded(a, c * Width), Conversions.Load8Padded(b, c * Width), lane);
        }
        return FoldLanes(acc);
    }

    /// <summary>
    /// Chunk c into lane c mod <paramref name="lanes"/> for the whole blocks of <paramref name="lanes"/> whole chunks, in
    /// ascending c; returns the first chunk after them. Out of line: inlined into a method with a stackalloc, the JIT
    /// kept the loop's invariants in memory and reloaded them on every chunk (1.3–1.5× slower GEMV).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int WholeBlocks<TA>(ReadOnlySpan<TA> a, ReadOnlySpan<float> b, int lanes, Span<Vector256<float>> acc) where TA : unmanaged
    {
        int full = a.Length / Width, c = 0;
        ref TA ra = ref MemoryMarshal.GetReference(a); // a.Length == b.Length was checked
        ref float rb = ref MemoryMarshal.GetReference(b);
        ref Vector256<float> lane0 = ref MemoryMarshal.GetReference(acc); // lanes ≤ 32 = acc's length
        for (; c + lanes <= full; c += lanes)
        {
            nuint i = (nuint)c * Width;
            for (int l = 0; l < lanes; l++, i += Width)
            {
                ref Vector256<float> lane = ref Unsafe.Add(ref lane0, l);
                lane = Vector256.FusedMultiplyAdd(Load8(ref ra, i), Vector256.LoadUnsafe(ref rb, i), lane);
            }
        }
        return c;
    }

    /// <summary>
    /// <see cref="Dot{TA}(ReadOnlySpan{TA}, ReadOnlySpan{float}, int)"/> over 4 lanes (<see cref="ScoreLanes"/>) held in
    /// registers: attention computes one per head and token, where the general path's setup cost more than the dot. Lanes that receive no chunk stay +0 and fold in without
    /// changing the bits, so the fold is always (L0 + L2) + (L1 + L3).
    /// </summary>
    private static float DotFourLanes<TA>(ReadOnlySpan<TA> a, ReadOnlySpan<float> b) where TA : unmanaged
    {
        Vector256<float> l0 = default, l1 = default, l2 = default, l3 = default;
        int full = a.Length / Width, chunks = Chunks(a.Length), c = 0;
        ref TA ra = ref MemoryMarshal.GetReference(a); // a.Length == b.Length was checked
        ref float rb = ref MemoryMarshal.GetReference(b);
        for (; c + 4 <= full; c += 4)
        {
            nuint i = (nuint)(c * Width);
            l0 = Vector256.FusedMultiplyAdd(Load8(ref ra, i), Vector256.LoadUnsafe(ref rb, i), l0);
            l1 = Vector256.FusedMultiplyAdd(Load8(ref ra, i + Width), Vector256.LoadUnsafe(ref rb, i + Width), l1);
            l2 = Vector256.FusedMultiplyAdd(Load8(ref ra, i + 2 * Width), Vector256.LoadUnsafe(ref rb, i + 2 * Width), l2);
            l3 = Vector256.FusedMultiplyAdd(Load8(ref ra, i + 3 * Width), Vector256.LoadUnsafe(ref rb, i + 3 * Width), l3);
        }
        for (; c < chunks; c++)
        {
            int i = c * Width;
            Vector256<float> x = Conversions.Load8Padded(a, i), y = Conversions.Load8Padded(b, i);
            switch (c & 3)
            {
                case 0: l0 = Vector256.FusedMultiplyAdd(x, y, l0); break;
                case 1: l1 = Vector256.FusedMultiplyAdd(x, y, l1); break;
                case 2: l2 = Vector256.FusedMultiplyAdd(x, y, l2); break;
                default: l3 = Vector256.FusedMultiplyAdd(x, y, l3); break;
            }
        }
        return (FoldSlots(l0) + FoldSlots(l2)) + (FoldSlots(l1) + FoldSlots(l3));
    }

    /// <summary>
    /// One lane of the feature-axis order for eight dots at once: chunk c of the shared operand (8 floats at
    /// scalars + 8c) goes to lane c mod <paramref name="lanes"/>, its element e to slot e, where it multiplies the eight
    /// dots' elements (a vector at vectors + 64c + 8e) into that slot's vector by fused multiply-adds in ascending c; the
    /// slots then fold as <see cref="FoldSlots"/> folds them. Each element of the result is the lane sum its dot would have.
    /// </summary>
    /// <param name="chunks">Whole chunks of the operands (pad a partial last chunk with +0: fma(+0, +0, s) is s).</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe Vector256<float> LaneOfEight(float* scalars, float* vectors, int lane, int lanes, int chunks)
    {
        Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
        for (int c = lane; c < chunks; c += lanes)
        {
            float* a = scalars + c * Width, b = vectors + c * Width * 8;
            s0 = Vector256.FusedMultiplyAdd(Vector256.Create(a[0]), Vector256.Load(b), s0);
            s1 = Vector256.FusedMultiplyAdd(Vector256.Create(a[1]), Vector256.Load(b + 8), s1);
            s2 = Vector256.FusedMultiplyAdd(Vector256.Create(a[2]), Vector256.Load(b + 16), s2);
            s3 = Vector256.FusedMultiplyAdd(Vector256.Create(a[3]), Vector256.Load(b + 24), s3);
            s4 = Vector256.FusedMultiplyAdd(Vector256.Create(a[4]), Vector256.Load(b + 32), s4);
            s5 = Vector256.FusedMultiplyAdd(Vector256.Create(a[5]), Vector256.Load(b + 40), s5);
            s6 = Vector256.FusedMultiplyAdd(Vector256.Create(a[6]), Vector256.Load(b + 48), s6);
            s7 = Vector256.FusedMultiplyAdd(Vector256.Create(a[7]), Vector256.Load(b + 56), s7);
        }
        return ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7));
    }

    /// <summary>Elements [i, i + 8) from <paramref name="a"/> as floats, unchecked (the callers stay inside their spans).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Load8<TA>(ref TA a, nuint i) where TA : unmanaged
    {
        if (typeof(TA) == typeof(float)) return Vector256.LoadUnsafe(ref Unsafe.As<TA, float>(ref a), i);
        if (typeof(TA) == typeof(Half)) return Conversions.WidenHalf(Vector128.LoadUnsafe(ref Unsafe.As<TA, ushort>(ref a), i));
        if (typeof(TA) == typeof(BFloat16)) return Conversions.WidenBFloat16(Vector128.LoadUnsafe(ref Unsafe.As<TA, ushort>(ref a), i));
        throw new NotSupportedException($"{typeof(TA).Name} is not a Tidal element type.");
    }

    /// <summary>Σ x[i] in the feature-axis order.</summary>
    public static float Sum(ReadOnlySpan<float> x)
    {
        int chunks = Chunks(x.Length);
        Span<Vector256<float>> acc = stackalloc Vector256<float>[Lanes];
        acc.Clear(); // lanes past the used ones fold in as +0 (see FoldLanes)
        int full = x.Length / Width;
        for (int c = 0; c < full; c++)
            acc[c & (Lanes - 1)] += Vector256.Create(x.Slice(c * Width, Width));
        if (full < chunks)
            acc[full & (Lanes - 1)] += Conversions.Load8Padded(x, full * Width);
        return FoldLanes(acc);
    }

    /// <summary>Σ x[i]² in the feature-axis order.</summary>
    public static float SumOfSquares(ReadOnlySpan<float> x) => Dot(x, x);

    /// <summary>
    /// Folds 32 lanes (unused ones +0): each lane's 8 slots by halving, then the lanes by halving. Folding a +0 lane
    /// changes no bits (the class remarks), so a dot over fewer lanes, or with fewer chunks than lanes, folds all 32.
    /// With AVX, eight lanes' slot folds run as three vector additions (the same additions of the same pairs as
    /// <see cref="FoldSlots"/>), where 32 scalar folds and a scalar halving cost more than a short dot itself
    /// (a profile of tidal-tiny's decode, 256-wide rows: 26 % of its time in the folds, 13 % in the dots).
    /// </summary>
    internal static float FoldLanes(ReadOnlySpan<Vector256<float>> lanes)
    {
        if (!Avx.IsSupported) return FoldLanesPortable(lanes);
        // g_k holds lane 8k + [0, 2, 4, 6, 1, 3, 5, 7]'s sum; the halvings by 16 and 8 pair equal positions.
        Vector256<float> g0 = FoldSlotsOfEight(lanes.Slice(0, 8)), g1 = FoldSlotsOfEight(lanes.Slice(8, 8));
        Vector256<float> g2 = FoldSlotsOfEight(lanes.Slice(16, 8)), g3 = FoldSlotsOfEight(lanes.Slice(24, 8));
        Vector256<float> h = (g0 + g2) + (g1 + g3);
        // h = [L0, L2, L4, L6 | L1, L3, L5, L7]: by 4, L0 + L4 and L2 + L6 (low half), L1 + L5 and L3 + L7 (high);
        // by 2 and 1: ((L0 + L4) + (L2 + L6)) + ((L1 + L5) + (L3 + L7)).
        Vector128<float> even = h.GetLower(), odd = h.GetUpper();
        float e = (even.GetElement(0) + even.GetElement(2)) + (even.GetElement(1) + even.GetElement(3));
        float o = (odd.GetElement(0) + odd.GetElement(2)) + (odd.GetElement(1) + odd.GetElement(3));
        return e + o;
    }

    /// <summary>
    /// <see cref="FoldSlots"/> of eight lanes a0 … a7 at once, as [a0, a2, a4, a6, a1, a3, a5, a7]: s[e] + s[e + 4] by
    /// pairing 128-bit halves, then + s[e + 2] and + s[e + 1] by shuffles that line up the same pairs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> FoldSlotsOfEight(ReadOnlySpan<Vector256<float>> a)
    {
        // [b_l | b_l+1] with b_l[e] = a_l[e] + a_l[e + 4]
        Vector256<float> u01 = Avx.Permute2x128(a[0], a[1], 0x20) + Avx.Permute2x128(a[0], a[1], 0x31);
        Vector256<float> u23 = Avx.Permute2x128(a[2], a[3], 0x20) + Avx.Permute2x128(a[2], a[3], 0x31);
        Vector256<float> u45 = Avx.Permute2x128(a[4], a[5], 0x20) + Avx.Permute2x128(a[4], a[5], 0x31);
        Vector256<float> u67 = Avx.Permute2x128(a[6], a[7], 0x20) + Avx.Permute2x128(a[6], a[7], 0x31);
        // [c0[0], c0[1], c2[0], c2[1] | c1[0], c1[1], c3[0], c3[1]] with c_l[e] = b_l[e] + b_l[e + 2]; likewise 4–7
        Vector256<float> v0 = Avx.Shuffle(u01, u23, 0x44) + Avx.Shuffle(u01, u23, 0xEE);
        Vector256<float> v1 = Avx.Shuffle(u45, u67, 0x44) + Avx.Shuffle(u45, u67, 0xEE);
        // [d0, d2, d4, d6 | d1, d3, d5, d7] with d_l = c_l[0] + c_l[1]
        return Avx.Shuffle(v0, v1, 0x88) + Avx.Shuffle(v0, v1, 0xDD);
    }

    /// <summary><see cref="FoldLanes"/> without AVX (and its oracle in the tests on machines with it).</summary>
    internal static float FoldLanesPortable(ReadOnlySpan<Vector256<float>> lanes)
    {
        Span<float> sums = stackalloc float[Lanes];
        for (int l = 0; l < lanes.Length; l++) sums[l] = FoldSlots(lanes[l]);
        return FoldHalving(sums.Slice(0, lanes.Length));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float FoldSlots(Vector256<float> v)
    {
        Vector128<float> b = v.GetLower() + v.GetUpper();     // s[e] + s[e+4]
        float c0 = b.GetElement(0) + b.GetElement(2);          // + s[e+2]
        float c1 = b.GetElement(1) + b.GetElement(3);
        return c0 + c1;                                        // + s[e+1]
    }

    /// <summary>
    /// Folds up to 32 partial sums by halving (v[i] += v[i + h] for h = 16, 8, 4, 2, 1), treating entries past
    /// <c>values.Length</c> as +0. Overwrites <paramref name="values"/>; returns the total.
    /// </summary>
    public static float FoldHalving(Span<float> values)
    {
        int n = values.Length;
        if (n == 0) return 0f;
        if (n > Slots) throw new ArgumentException($"at most {Slots} partial sums, got {n}.", nameof(values));
        for (int h = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)n) / 2; h >= 1; h /= 2)
            for (int i = 0; i < h && i + h < n; i++)
                values[i] += values[i + h];
        return values[0];
    }

    /// <summary><see cref="FoldHalving(Span{float})"/> elementwise over vectors: element t folds the partial sums of dot t
    /// (the eight-dot paths of <see cref="LaneOfEight"/>); entries past <c>values.Length</c> are +0.</summary>
    internal static Vector256<float> FoldHalving(Span<Vector256<float>> values)
    {
        int n = values.Length;
        for (int h = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)n) / 2; h >= 1; h /= 2)
            for (int i = 0; i < h && i + h < n; i++)
                values[i] += values[i + h];
        return values[0];
    }

    /// <summary>Folds up to 32 partial vectors (rows of <paramref name="rows"/>, each <paramref name="width"/> long) by
    /// halving, elementwise, into row 0. Used for the token-axis attention accumulators.</summary>
    public static void FoldHalving(Span<float> rows, int count, int width)
    {
        if (count > Slots) throw new ArgumentException($"at most {Slots} partial rows, got {count}.", nameof(count));
        if (count == 0) { rows.Slice(0, width).Clear(); return; }
        for (int h = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)count) / 2; h >= 1; h /= 2)
            for (int i = 0; i < h && i + h < count; i++)
                System.Numerics.Tensors.TensorPrimitives.Add(rows.Slice(i * width, width), rows.Slice((i + h) * width, width), rows.Slice(i * width, width));
    }
}
