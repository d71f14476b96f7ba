using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Decode attention of one query token over an F16 KV cache, dense (a position range) or gathered (an index set per
/// query head, per KV head, or shared), in splits of positions (split-K) that <see cref="MergeStatesKernel"/> merges.
/// One group per (block of up to 4 query heads that share a KV head and a token list, split), so each K and V row is
/// read once for the whole GQA block:
/// <list type="number">
/// <item>scores: P = 2^⌈log2(d/8)⌉ lanes per token, one 16-byte K chunk per lane, 8 fma slots per head, shuffle-xor fold;</item>
/// <item>per head max (exact), logits out, p_j = Exp(s_j − m) into shared memory;</item>
/// <item>lane t of every warp is token slot t (tokens t, t + 32, …, in order) and warp w owns channels [16w, 16w + 16):
/// it loads 32 bytes of V per token and accumulates p·v with fma; the 32 slots then fold by shuffle-xor halving.</item>
/// </list>
/// Reference: Tidal.Core.Reference.Attention.Partial / SparsePerQueryHead / SparsePerKvHead / SparseShared, bit for bit.
/// </summary>
public sealed class DecodeAttentionKernel
{
    /// <summary>Query heads one group serves (they share every K/V load).</summary>
    public const int MaxHeadsPerBlock = 4;

    /// <summary>Which tokens each head attends.</summary>
    public static class Modes
    {
        /// <summary>Positions [Start, Start + Count).</summary>
        public const int Range = 0;
        /// <summary>Indices [heads, Count].</summary>
        public const int PerQueryHead = 1;
        /// <summary>Indices [kvHeads, Count].</summary>
        public const int PerKvHead = 2;
        /// <summary>Indices [Count], shared by all heads.</summary>
        public const int Shared = 3;
    }

    /// <summary>Arguments of one launch.</summary>
    public struct Args
    {
        /// <summary>Queries after RoPE, [heads, d].</summary>
        public ArrayView<float> Q;
        /// <summary>F16 key cache as bytes, [kvHeads, capacity, d].</summary>
        public ArrayView<byte> Keys;
        /// <summary>F16 value cache as bytes, [kvHeads, capacity, d].</summary>
        public ArrayView<byte> Values;
        /// <summary>[heads, d] with one split; else partial outputs [splits, heads, d].</summary>
        public ArrayView<float> Output;
        /// <summary>[heads] with one split; else [splits, heads].</summary>
        public ArrayView<float> Lse;
        /// <summary>Scaled logits [heads, Count] when WriteLogits is 1.</summary>
        public ArrayView<float> Logits;
        /// <summary>Index sets (modes other than Range).</summary>
        public ArrayView<int> Indices;
        /// <summary>One of <see cref="Modes"/>.</summary>
        public int Mode;
        /// <summary>Tokens per head.</summary>
        public int Count;
        /// <summary>First position (Range mode).</summary>
        public int Start;
        /// <summary>Cache positions per KV head.</summary>
        public int Capacity;
        /// <summary>Head dimension (multiple of 8, at most 256).</summary>
        public int HeadDim;
        /// <summary>Query heads per KV head.</summary>
        public int Group;
        /// <summary>Query heads.</summary>
        public int Heads;
        /// <summary>Query heads per thread group (1 to 4; divides Group).</summary>
        public int HeadsPerBlock;
        /// <summary>Tokens per split.</summary>
        public int SplitSize;
        /// <summary>1 to write the logits.</summary>
        public int WriteLogits;
        /// <summary>1/√d, computed on the host as the reference does.</summary>
        public float Scale;
    }

    private readonly Action<KernelConfig, Args> _kernel;

    /// <summary>Compiles the kernel.</summary>
    public DecodeAttentionKernel(Accelerator accelerator) => _kernel = accelerator.LoadStreamKernel<Args>(Run);

    /// <summary>Splits needed for <paramref name="count"/> tokens.</summary>
    public static int SplitCount(int count, int splitSize) => Math.Max(1, (count + splitSize - 1) / splitSize);

    /// <summary>Heads that can share one group's loads: per-query-head index sets share nothing.</summary>
    public static int HeadsPerBlockFor(int mode, int group)
    {
        if (mode == Modes.PerQueryHead) return 1;
        for (int h = MaxHeadsPerBlock; h > 1; h--) if (group % h == 0) return h;
        return 1;
    }

    /// <summary>Launches (heads / HeadsPerBlock) × splits groups of 32 · ⌈d/16⌉ threads.</summary>
    public void Launch(Args args)
    {
        if (args.HeadDim % 8 != 0 || args.HeadDim > 256) throw new ArgumentException($"GPU attention needs headDim a multiple of 8 and at most 256, got {args.HeadDim}.", nameof(args));
        int warps = (args.HeadDim / 8 + 1) / 2, splits = SplitCount(args.Count, args.SplitSize);
        int shared = args.HeadsPerBlock * (args.HeadDim + args.SplitSize + warps);
        _kernel(new KernelConfig(new Index2D(args.Heads / args.HeadsPerBlock, splits), new Index2D(32 * warps, 1), SharedMemoryConfig.RequestDynamic<float>(shared)), args);
    }

    private static int Position(in Args a, int head, int j)
    {
        if (a.Mode == Modes.Range) return a.Start + j;
        if (a.Mode == Modes.PerQueryHead) return a.Indices[(long)head * a.Count + j];
        if (a.Mode == Modes.PerKvHead) return a.Indices[(long)(head / a.Group) * a.Count + j];
        return a.Indices[j];
    }

    private static Vec8 SharedChunk(ArrayView<float> s, int offset)
    {
        var v = new Vec8();
        v.F0 = s[offset]; v.F1 = s[offset + 1]; v.F2 = s[offset + 2]; v.F3 = s[offset + 3];
        v.F4 = s[offset + 4]; v.F5 = s[offset + 5]; v.F6 = s[offset + 6]; v.F7 = s[offset + 7];
        return v;
    }

    /// <summary>Folds a slot accumulator over the 32 lanes (token slots) by shuffle-xor halving.</summary>
    private static Vec8 FoldSlots32(Vec8 v)
    {
        v.F0 = KernelMath.FoldLanes(v.F0, 32); v.F1 = KernelMath.FoldLanes(v.F1, 32);
        v.F2 = KernelMath.FoldLanes(v.F2, 32); v.F3 = KernelMath.FoldLanes(v.F3, 32);
        v.F4 = KernelMath.FoldLanes(v.F4, 32); v.F5 = KernelMath.FoldLanes(v.F5, 32);
        v.F6 = KernelMath.FoldLanes(v.F6, 32); v.F7 = KernelMath.FoldLanes(v.F7, 32);
        return v;
    }

    private static void Store(ArrayView<float> output, long at, in Vec8 o, float total, int valid)
    {
        output[at] = valid != 0 ? o.F0 / total : 0f; output[at + 1] = valid != 0 ? o.F1 / total : 0f;
        output[at + 2] = valid != 0 ? o.F2 / total : 0f; output[at + 3] = valid != 0 ? o.F3 / total : 0f;
        output[at + 4] = valid != 0 ? o.F4 / total : 0f; output[at + 5] = valid != 0 ? o.F5 / total : 0f;
        output[at + 6] = valid != 0 ? o.F6 / total : 0f; output[at + 7] = valid != 0 ? o.F7 / total : 0f;
    }

    /// <summary>Scores token j for every head of the block from this lane's K chunk (zero for idle lanes), folding over P lanes.</summary>
    private static void ScoreToken(in Args a, ArrayView<float> q, ArrayView<float> probs, int S, int hb, int d, int chunks, int n, int j, int part, int p, in Vec8 k)
    {
        Vec8 s0 = new Vec8(), s1 = new Vec8(), s2 = new Vec8(), s3 = new Vec8();
        if (j < n && part < chunks)
        {
            s0.Fma(k, SharedChunk(q, part * 8));
            if (hb > 1) s1.Fma(k, SharedChunk(q, d + part * 8));
            if (hb > 2) s2.Fma(k, SharedChunk(q, 2 * d + part * 8));
            if (hb > 3) s3.Fma(k, SharedChunk(q, 3 * d + part * 8));
        }
        float r0 = KernelMath.FoldLanes(KernelMath.FoldSlots(s0), p);
        float r1 = KernelMath.FoldLanes(KernelMath.FoldSlots(s1), p);
        float r2 = KernelMath.FoldLanes(KernelMath.FoldSlots(s2), p);
        float r3 = KernelMath.FoldLanes(KernelMath.FoldSlots(s3), p);
        if (j < n && part == 0)
        {
            probs[j] = KernelMath.Mul(r0, a.Scale);
            if (hb > 1) probs[S + j] = KernelMath.Mul(r1, a.Scale);
            if (hb > 2) probs[2 * S + j] = KernelMath.Mul(r2, a.Scale);
            if (hb > 3) probs[3 * S + j] = KernelMath.Mul(r3, a.Scale);
        }
    }

    private static void Accumulate(ArrayView<float> probs, int S, int j, int hb, in Vec8 v0, in Vec8 v1, ref float d0, ref float d1, ref float d2, ref float d3,
        ref Vec8 o00, ref Vec8 o01, ref Vec8 o10, ref Vec8 o11, ref Vec8 o20, ref Vec8 o21, ref Vec8 o30, ref Vec8 o31)
    {
        float p0 = probs[j];
        d0 = KernelMath.Add(d0, p0); o00.Fma(p0, v0); o01.Fma(p0, v1);
        if (hb > 1) { float p1 = probs[S + j]; d1 = KernelMath.Add(d1, p1); o10.Fma(p1, v0); o11.Fma(p1, v1); }
        if (hb > 2) { float p2 = probs[2 * S + j]; d2 = KernelMath.Add(d2, p2); o20.Fma(p2, v0); o21.Fma(p2, v1); }
        if (hb > 3) { float p3 = probs[3 * S + j]; d3 = KernelMath.Add(d3, p3); o30.Fma(p3, v0); o31.Fma(p3, v1); }
    }

    private static void Run(Args a)
    {
        ArrayView<float> shared = SharedMemory.GetDynamic<float>();
        int hb = a.HeadsPerBlock, firstHead = Grid.IdxX * hb, split = Grid.IdxY, tid = Group.IdxX, warp = tid / 32, lane = tid % 32;
        int d = a.HeadDim, chunks = d / 8, warps = Group.DimX / 32, S = a.SplitSize;
        int splitStart = split * S;
        int n = Math.Min(S, a.Count - splitStart);
        ArrayView<float> q = shared.SubView(0, hb * d);
        ArrayView<float> probs = shared.SubView(hb * d, hb * S);
        ArrayView<float> warpMax = shared.SubView(hb * d + hb * S, hb * warps);
        long kvBase = (long)(firstHead / a.Group) * a.Capacity * chunks; // in 8-element chunks

        for (int i = tid; i < hb * d; i += Group.DimX) q[i] = a.Q[(long)firstHead * d + i];
        Group.Barrier();

        // Phase 1: s_j = Dot(k_j, q_h) · scale for every head of the block; P lanes per token.
        int p = 1;
        while (p < chunks) p *= 2;
        int tokensPerWarp = 32 / p, sub = lane / p, part = lane % p;
        int stride = warps * tokensPerWarp;
        for (int first = warp * tokensPerWarp; first < n; first += 2 * stride)
        {
            // Two tokens per lane group per pass, both K loads issued before either is used.
            int ja = first + sub, jb = first + stride + sub;
            Vec8 ka = ja < n && part < chunks ? Loads.Chunk(a.Keys, kvBase + (long)Position(a, firstHead, splitStart + ja) * chunks + part, Format.F16) : new Vec8();
            Vec8 kb = jb < n && part < chunks ? Loads.Chunk(a.Keys, kvBase + (long)Position(a, firstHead, splitStart + jb) * chunks + part, Format.F16) : new Vec8();
            ScoreToken(a, q, probs, S, hb, d, chunks, n, ja, part, p, ka);
            ScoreToken(a, q, probs, S, hb, d, chunks, n, jb, part, p, kb);
        }
        Group.Barrier();

        // Phase 2: per head m = max s_j (exact in any order), logits out, p_j = Exp(s_j − m).
        for (int h = 0; h < hb; h++)
        {
            float m = float.NegativeInfinity;
            for (int j = tid; j < n; j += Group.DimX) m = MathF.Max(m, probs[h * S + j]);
            for (int x = 16; x >= 1; x /= 2) m = MathF.Max(m, Warp.ShuffleXor(m, x));
            if (lane == 0) warpMax[h * warps + warp] = m;
        }
        Group.Barrier();
        float m0 = float.NegativeInfinity, m1 = float.NegativeInfinity, m2 = float.NegativeInfinity, m3 = float.NegativeInfinity;
        for (int w = 0; w < warps; w++)
        {
            m0 = MathF.Max(m0, warpMax[w]);
            if (hb > 1) m1 = MathF.Max(m1, warpMax[warps + w]);
            if (hb > 2) m2 = MathF.Max(m2, warpMax[2 * warps + w]);
            if (hb > 3) m3 = MathF.Max(m3, warpMax[3 * warps + w]);
        }
        for (int i = tid; i < hb * n; i += Group.DimX)
        {
            int h = i / n, j = i % n;
            float s = probs[h * S + j];
            if (a.WriteLogits != 0) a.Logits[(long)(firstHead + h) * a.Count + splitStart + j] = s;
            float m = h == 0 ? m0 : h == 1 ? m1 : h == 2 ? m2 : m3;
            probs[h * S + j] = KernelMath.Exp(KernelMath.Sub(s, m));
        }
        Group.Barrier();

        // Phase 3: lane = token slot, warp w = channels [16w, 16w + 16): D and O accumulate in token order, with fma.
        int c0 = 2 * warp, c1 = 2 * warp + 1;
        bool second = c1 < chunks;
        Vec8 o00 = new Vec8(), o01 = new Vec8(), o10 = new Vec8(), o11 = new Vec8(), o20 = new Vec8(), o21 = new Vec8(), o30 = new Vec8(), o31 = new Vec8();
        float d0 = 0f, d1 = 0f, d2 = 0f, d3 = 0f;
        for (int j = lane; j < n; j += 64)
        {
            // Two tokens' V loads in flight before either is accumulated; each slot still takes its tokens in order.
            bool next = j + 32 < n;
            long row = kvBase + (long)Position(a, firstHead, splitStart + j) * chunks;
            long rowNext = next ? kvBase + (long)Position(a, firstHead, splitStart + j + 32) * chunks : row;
            Vec8 v0 = Loads.Chunk(a.Values, row + c0, Format.F16);
            Vec8 v1 = second ? Loads.Chunk(a.Values, row + c1, Format.F16) : new Vec8();
            Vec8 w0 = Loads.Chunk(a.Values, rowNext + c0, Format.F16);
            Vec8 w1 = second ? Loads.Chunk(a.Values, rowNext + c1, Format.F16) : new Vec8();
            Accumulate(probs, S, j, hb, v0, v1, ref d0, ref d1, ref d2, ref d3, ref o00, ref o01, ref o10, ref o11, ref o20, ref o21, ref o30, ref o31);
            if (next) Accumulate(probs, S, j + 32, hb, w0, w1, ref d0, ref d1, ref d2, ref d3, ref o00, ref o01, ref o10, ref o11, ref o20, ref o21, ref o30, ref o31);
        }

        // Phase 4: fold the 32 slots (empty slots are +0, which changes no bits), normalise within the split.
        int splits = (a.Count + S - 1) / S;
        int valid = n > 0 ? 1 : 0;
        for (int h = 0; h < hb; h++)
        {
            Vec8 first = h == 0 ? o00 : h == 1 ? o10 : h == 2 ? o20 : o30;
            Vec8 last = h == 0 ? o01 : h == 1 ? o11 : h == 2 ? o21 : o31;
            float total = KernelMath.FoldLanes(h == 0 ? d0 : h == 1 ? d1 : h == 2 ? d2 : d3, 32);
            first = FoldSlots32(first);
            last = FoldSlots32(last);
            int head = firstHead + h;
            long outBase = splits <= 1 ? (long)head * d : ((long)split * a.Heads + head) * d;
            if (lane == 0)
            {
                Store(a.Output, outBase + c0 * 8, first, total, valid);
                if (second) Store(a.Output, outBase + c1 * 8, last, total, valid);
                if (warp == 0)
                {
                    float m = h == 0 ? m0 : h == 1 ? m1 : h == 2 ? m2 : m3;
                    a.Lse[splits <= 1 ? head : (long)split * a.Heads + head] = valid != 0 ? KernelMath.Add(m, KernelMath.Log(total)) : float.NegativeInfinity;
                }
            }
        }
    }
}
