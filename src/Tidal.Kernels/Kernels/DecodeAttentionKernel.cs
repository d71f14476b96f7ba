using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Decode attention of one query token over an F16 KV cache, dense (a position range) or gathered (an index set per
/// query head, per KV head, or shared), split into chunks of positions (split-K) whose partial states
/// <see cref="MergeStatesKernel"/> merges. One group of 256 threads per (query head, split), in three phases:
/// scores (P = 2^⌈log2 chunks⌉ lanes per token, shuffle-xor fold), max and exp, then 32 token slots × d/8 chunks
/// accumulating p·v with fma and a halving fold in shared memory.
/// Reference: Tidal.Core.Reference.Attention.Partial / SparsePerQueryHead / SparsePerKvHead / SparseShared, bit for bit.
/// </summary>
public sealed class DecodeAttentionKernel
{
    private const int Threads = 256;
    private const int Warps = Threads / 32;

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
        /// <summary>Head dimension (multiple of 8).</summary>
        public int HeadDim;
        /// <summary>Query heads per KV head.</summary>
        public int Group;
        /// <summary>Query heads.</summary>
        public int Heads;
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

    /// <summary>Launches (heads × splits) groups.</summary>
    public void Launch(Args args)
    {
        if (args.HeadDim % 8 != 0) throw new ArgumentException($"GPU attention needs headDim to be a multiple of 8, got {args.HeadDim}.", nameof(args));
        int splits = SplitCount(args.Count, args.SplitSize);
        int shared = args.SplitSize + 32 * args.HeadDim + 32 + Warps;
        _kernel(new KernelConfig(new Index2D(args.Heads, splits), new Index2D(Threads, 1), SharedMemoryConfig.RequestDynamic<float>(shared)), args);
    }

    private static int Position(in Args a, int head, int j)
    {
        if (a.Mode == Modes.Range) return a.Start + j;
        if (a.Mode == Modes.PerQueryHead) return a.Indices[(long)head * a.Count + j];
        if (a.Mode == Modes.PerKvHead) return a.Indices[(long)(head / a.Group) * a.Count + j];
        return a.Indices[j];
    }

    private static void Run(Args a)
    {
        ArrayView<float> shared = SharedMemory.GetDynamic<float>();
        int head = Grid.IdxX, split = Grid.IdxY, tid = Group.IdxX, warp = tid / 32, lane = tid % 32;
        int d = a.HeadDim, chunks = d / 8;
        int splitStart = split * a.SplitSize;
        int n = Math.Min(a.SplitSize, a.Count - splitStart);
        ArrayView<float> scores = shared.SubView(0, a.SplitSize);
        ArrayView<float> slots = shared.SubView(a.SplitSize, 32 * d);
        ArrayView<float> denominators = shared.SubView(a.SplitSize + 32 * d, 32);
        ArrayView<float> warpMax = shared.SubView(a.SplitSize + 32 * d + 32, Warps);
        long kvBase = (long)(head / a.Group) * a.Capacity * chunks; // in chunks of 8 elements

        // Phase 1: s_j = Dot(k_j, q) · scale, P lanes per token.
        int p = 1;
        while (p < chunks && p < 32) p *= 2;
        int tokensPerWarp = 32 / p, sub = lane / p, part = lane % p;
        for (int first = warp * tokensPerWarp; first < n; first += Warps * tokensPerWarp)
        {
            int j = first + sub;
            var acc = new Vec8();
            if (j < n)
            {
                long row = kvBase + (long)Position(a, head, splitStart + j) * chunks;
                for (int c = part; c < chunks; c += p)
                    acc.Fma(Loads.Chunk(a.Keys, row + c, Format.F16), Loads.Activations(a.Q, (long)head * d, c, d));
            }
            float s = KernelMath.FoldLanes(KernelMath.FoldSlots(acc), p);
            if (j < n && part == 0) scores[j] = KernelMath.Mul(s, a.Scale);
        }
        Group.Barrier();

        // Phase 2: m = max s_j (exact in any order), logits out, p_j = Exp(s_j − m).
        float m = float.NegativeInfinity;
        for (int j = tid; j < n; j += Threads) m = MathF.Max(m, scores[j]);
        for (int h = 16; h >= 1; h /= 2) m = MathF.Max(m, Warp.ShuffleXor(m, h));
        if (lane == 0) warpMax[warp] = m;
        Group.Barrier();
        m = float.NegativeInfinity;
        for (int w = 0; w < Warps; w++) m = MathF.Max(m, warpMax[w]);
        for (int j = tid; j < n; j += Threads)
        {
            float s = scores[j];
            if (a.WriteLogits != 0) a.Logits[(long)head * a.Count + splitStart + j] = s;
            scores[j] = KernelMath.Exp(KernelMath.Sub(s, m));
        }
        Group.Barrier();

        // Phase 3: slot t (of 32) takes tokens t, t + 32, … in order: D_t = Σ p_j, O_t = Σ p_j·v_j (fma), per 8-channel chunk.
        for (int pair = tid; pair < 32 * chunks; pair += Threads)
        {
            int slot = pair / chunks, c = pair % chunks;
            var acc = new Vec8();
            float denominator = 0f;
            for (int j = slot; j < n; j += 32)
            {
                float pj = scores[j];
                if (c == 0) denominator = KernelMath.Add(denominator, pj);
                acc.Fma(pj, Loads.Chunk(a.Values, kvBase + (long)Position(a, head, splitStart + j) * chunks + c, Format.F16));
            }
            int o = slot * d + c * 8;
            slots[o] = acc.F0; slots[o + 1] = acc.F1; slots[o + 2] = acc.F2; slots[o + 3] = acc.F3;
            slots[o + 4] = acc.F4; slots[o + 5] = acc.F5; slots[o + 6] = acc.F6; slots[o + 7] = acc.F7;
            if (c == 0) denominators[slot] = denominator;
        }
        Group.Barrier();

        // Phase 4: fold the 32 slots by halving (empty slots are +0, which changes no bits).
        for (int h = 16; h >= 1; h /= 2)
        {
            for (int i = tid; i < h * d; i += Threads) slots[i] = KernelMath.Add(slots[i], slots[i + h * d]);
            if (tid < h) denominators[tid] = KernelMath.Add(denominators[tid], denominators[tid + h]);
            Group.Barrier();
        }

        // Phase 5: normalise within the split; its log-sum-exp lets splits merge.
        int splits = (a.Count + a.SplitSize - 1) / a.SplitSize;
        long outBase = splits <= 1 ? (long)head * d : ((long)split * a.Heads + head) * d;
        float total = denominators[0];
        for (int i = tid; i < d; i += Threads) a.Output[outBase + i] = n <= 0 ? 0f : slots[i] / total;
        if (tid == 0) a.Lse[splits <= 1 ? head : (long)split * a.Heads + head] = n <= 0 ? float.NegativeInfinity : KernelMath.Add(m, KernelMath.Log(total));
    }
}
