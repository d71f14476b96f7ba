using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Decode attention of one query token over an F16 KV cache, dense (a position range) or gathered (an index set per
/// query head, per KV head, or shared), in splits of positions (split-K) that the last split of a head block to finish
/// merges (<see cref="MergeStates"/>), so that a layer's attention is one launch; or of a chunk of consecutive tokens
/// (causal: row r over Count + r positions, each row split as its own decode step would be), so that prefill and cache
/// correction take one launch per layer instead of one per token.
/// One group of 32 threads per 8-channel chunk (4d threads) per (block of up to 4 query heads that share a KV head and a
/// token list, split), so each K and V row is read once for the whole GQA block:
/// <list type="number">
/// <item>scores, in the score order (Reduction.ScoreLanes = 4 lanes of 8 fma slots): 4 lanes per token, each taking
/// every 4th 16-byte K chunk into its slots against the block's queries staged in shared memory (one address per
/// chunk, so 8 fmas per 16-byte query load), its four chunks' loads in flight for d = 128 (two otherwise); each lane
/// folds its slots, then the 4 lanes fold every head at once by a transposed butterfly (each shuffle step halves the
/// heads a lane keeps): 3 shuffles per token for 4 heads. (One chunk per lane, 16 lanes per token, cost 7 adds per
/// chunk and head to fold and 40 % more instructions per byte.)</item>
/// <item>per head max (exact), logits out, p_j = Exp(s_j − m) into shared memory;</item>
/// <item>thread i is token slot t = i / (d/8) (tokens t, t + 32, …, in order) for channels [8c, 8c + 8), c = i % (d/8):
/// 16 bytes of V per token, so a warp reads whole consecutive rows (with one chunk per warp and a slot per lane, every
/// 16 bytes fell in its own line: ncu counted the L1 at 84 % and a third of all sectors wasted); two tokens in flight
/// (four would exceed the 64 registers two groups per SM allow: the spills cost 25 %), p·v with fma, the block's
/// probabilities of a token side by side in shared memory (one load).</item>
/// <item>the 32 slots of each channel, now in different warps, fold through shared memory in the canonical halving
/// order, one head at a time.</item>
/// <item>with several splits: each group takes a ticket of its (row, head block) (<see cref="LastGroup"/>), and the last
/// one merges the block's heads from the partial states every split has written by then (a second launch cost its
/// launch gap, ~4 µs, and a grid whose groups each waited on one dependent chain of loads).</item>
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
        /// <summary>Queries after RoPE, [Rows, QStride]: each row's first heads · d values.</summary>
        public ArrayView<float> Q;
        /// <summary>F16 key cache as bytes, [kvHeads, capacity, d].</summary>
        public ArrayView<byte> Keys;
        /// <summary>F16 value cache as bytes, [kvHeads, capacity, d].</summary>
        public ArrayView<byte> Values;
        /// <summary>[Rows, heads, d]: written directly by rows of one split, else by the merge.</summary>
        public ArrayView<float> Output;
        /// <summary>Partial outputs [Rows, SplitsPerRow, heads, d] of rows with several splits.</summary>
        public ArrayView<float> Partials;
        /// <summary>Partial log-sum-exps [Rows, SplitsPerRow, heads] of rows with several splits.</summary>
        public ArrayView<float> Lse;
        /// <summary>Scaled logits [heads, Count] when WriteLogits is 1.</summary>
        public ArrayView<float> Logits;
        /// <summary>Index sets (modes other than Range).</summary>
        public ArrayView<int> Indices;
        /// <summary>Split tickets [Rows, Heads / HeadsPerBlock]: zero before a launch, and left zero by it.</summary>
        public ArrayView<int> Tickets;
        /// <summary>One of <see cref="Modes"/>.</summary>
        public int Mode;
        /// <summary>Tokens per head (of row 0; row r has Count + r).</summary>
        public int Count;
        /// <summary>Query rows: 1 for a decode step; more for a causal chunk (Range mode, no logits).</summary>
        public int Rows;
        /// <summary>Floats from one query row to the next (a multiple of 4).</summary>
        public int QStride;
        /// <summary>Grid rows per query row: the most splits any row needs.</summary>
        public int SplitsPerRow;
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
        /// <summary>Tokens per split (with several rows: the largest, the last row's; each row uses its own).</summary>
        public int SplitSize;
        /// <summary>1 to write the logits.</summary>
        public int WriteLogits;
        /// <summary>1/√d, computed on the host as the reference does.</summary>
        public float Scale;
    }

    /// <summary>How a group finds entry j of its token list. The kernel is compiled once per kind, so that the dense
    /// path carries no index loads and no mode tests in its loops.</summary>
    public interface ITokenList
    {
        /// <summary>The cache position of entry j (<paramref name="list"/>: the block's index list from its split's start).</summary>
        int Position(in Args a, ArrayView<int> list, int j);
    }

    /// <summary>Positions Start + j (<see cref="Modes.Range"/>).</summary>
    public struct PositionRange : ITokenList
    {
        /// <inheritdoc/>
        public readonly int Position(in Args a, ArrayView<int> list, int j) => a.Start + j;
    }

    /// <summary>Positions read from an index set (every other mode).</summary>
    public struct IndexSet : ITokenList
    {
        /// <inheritdoc/>
        public readonly int Position(in Args a, ArrayView<int> list, int j) => list[j];
    }

    /// <summary>How many query heads a group serves, compiled in (1, 2 or 4): the head loops and folds then carry no
    /// runtime tests of the block size.</summary>
    public interface IHeadBlock
    {
        /// <summary>Query heads per group.</summary>
        int Heads { get; }
    }

    /// <summary>One head per group (per-query-head index sets, or group sizes not divisible by 2).</summary>
    public struct OneHead : IHeadBlock
    {
        /// <inheritdoc/>
        public readonly int Heads => 1;
    }

    /// <summary>Two heads per group.</summary>
    public struct TwoHeads : IHeadBlock
    {
        /// <inheritdoc/>
        public readonly int Heads => 2;
    }

    /// <summary>Four heads per group.</summary>
    public struct FourHeads : IHeadBlock
    {
        /// <inheritdoc/>
        public readonly int Heads => 4;
    }

    /// <summary>How many 8-channel chunks a head has: compiled in for d = 128 (every Llama-3 size), so that the lanes
    /// per token, the tokens per pass and the fold's steps are constants; read from the arguments otherwise.</summary>
    public interface IHeadDim
    {
        /// <summary>HeadDim / 8.</summary>
        int Chunks(in Args a);
    }

    /// <summary>d = 128.</summary>
    public struct Dim128 : IHeadDim
    {
        /// <inheritdoc/>
        public readonly int Chunks(in Args a) => 16;
    }

    /// <summary>Any d (a multiple of 8, at most 256).</summary>
    public struct AnyHeadDim : IHeadDim
    {
        /// <inheritdoc/>
        public readonly int Chunks(in Args a) => a.HeadDim / 8;
    }

    private readonly Accelerator _accelerator;
    private readonly Action<KernelConfig, Args>?[] _kernels = new Action<KernelConfig, Args>?[18];

    /// <summary>Prepares the kernel; each variant (token-list kind × heads per group × head dimension and launch
    /// bounds) compiles on its first launch, or in <see cref="CompileAll"/>.</summary>
    public DecodeAttentionKernel(Accelerator accelerator) => _accelerator = accelerator;

    /// <summary>Compiles now every variant for head dimensions up to 128 (larger ones compile on first use).</summary>
    public void CompileAll()
    {
        foreach (bool range in new[] { true, false })
            foreach (int hb in new[] { 1, 2, 4 })
                foreach (int headDim in new[] { 128, 64 })
                    _ = Kernel(range, hb, headDim);
    }

    /// <summary>The variant for a token-list kind, block size and head dimension: for d ≤ 128 with registers capped so
    /// that two groups of 512 threads share an SM (one group per SM leaves the loads of one phase unoverlapped by
    /// another's work).</summary>
    private Action<KernelConfig, Args> Kernel(bool range, int hb, int headDim)
    {
        int dim = headDim == 128 ? 0 : 32 * headDim / 8 <= TwoPerSmThreads ? 1 : 2;
        bool two = dim < 2 && _accelerator.AcceleratorType == AcceleratorType.Cuda; // the CPU accelerator rejects launch bounds
        var bounds = two ? new KernelSpecialization(TwoPerSmThreads, 2) : KernelSpecialization.Empty;
        return _kernels[(range ? 0 : 9) + 3 * (hb / 2) + dim] ??= range ? Load<PositionRange>(hb, dim, bounds) : Load<IndexSet>(hb, dim, bounds);
    }

    private Action<KernelConfig, Args> Load<T>(int hb, int dim, KernelSpecialization bounds) where T : struct, ITokenList => hb switch
    {
        1 => Load<T, OneHead>(dim, bounds),
        2 => Load<T, TwoHeads>(dim, bounds),
        _ => Load<T, FourHeads>(dim, bounds),
    };

    private Action<KernelConfig, Args> Load<T, H>(int dim, KernelSpecialization bounds) where T : struct, ITokenList where H : struct, IHeadBlock =>
        dim == 0 ? _accelerator.LoadStreamKernel<Args>(Run<T, H, Dim128>, bounds) : _accelerator.LoadStreamKernel<Args>(Run<T, H, AnyHeadDim>, bounds);

    private const int TwoPerSmThreads = 512;

    /// <summary>Splits needed for <paramref name="count"/> tokens.</summary>
    public static int SplitCount(int count, int splitSize) => Math.Max(1, (count + splitSize - 1) / splitSize);

    /// <summary>Heads that share one group's loads (1, 2 or 4): the most that divide the GQA group (per-query-head index
    /// sets share nothing), halved while the launch would have fewer than <paramref name="minGroups"/> groups. A short
    /// token list leaves few splits: 8 KV heads × 4 splits (k = 256) are 32 groups of 4 heads for 132 SMs, so most
    /// SMs would idle, while 128 groups of one head each read their KV head's rows (all but the first from L2).
    /// Every head's arithmetic is the same whatever its group holds, so the choice changes no bits.</summary>
    /// <param name="gridRows">Query rows × splits per row: the grid's second dimension.</param>
    public static int HeadsPerBlockFor(int mode, int heads, int group, long gridRows, int minGroups)
    {
        if (mode == Modes.PerQueryHead) return 1;
        int hb = MaxHeadsPerBlock;
        while (group % hb != 0) hb /= 2;
        while (hb > 1 && heads / hb * gridRows < minGroups) hb /= 2;
        return hb;
    }

    /// <summary>Splits of a row attending to <paramref name="count"/> tokens, each split as long as a decode step's.</summary>
    public static int RowSplits(int count) => SplitCount(count, Tidal.Core.Reference.Attention.DecodeSplitSize(count));

    /// <summary>Launches (heads / HeadsPerBlock) × (Rows · SplitsPerRow) groups of 32 · d/8 threads.</summary>
    public void Launch(Args args)
    {
        if (args.HeadDim % 8 != 0 || args.HeadDim > 256) throw new ArgumentException($"GPU attention needs headDim a multiple of 8 and at most 256, got {args.HeadDim}.", nameof(args));
        if (args.HeadsPerBlock is not (1 or 2 or 4)) throw new ArgumentException($"HeadsPerBlock must be 1, 2 or 4, got {args.HeadsPerBlock}.", nameof(args));
        if (args.QStride % 4 != 0) throw new ArgumentException($"query rows must start 16-byte aligned, got a stride of {args.QStride}.", nameof(args));
        if ((long)args.Capacity * (args.HeadDim / 8) > int.MaxValue) throw new ArgumentException($"a KV head of {args.Capacity} positions × {args.HeadDim} channels is too large for 32-bit chunk offsets.", nameof(args));
        int warps = args.HeadDim / 8;
        int shared = SharedFloats(args.HeadDim, args.HeadsPerBlock, args.SplitSize);
        Kernel(args.Mode == Modes.Range, args.HeadsPerBlock, args.HeadDim)(
            new KernelConfig(new Index2D(args.Heads / args.HeadsPerBlock, args.Rows * args.SplitsPerRow), new Index2D(32 * warps, 1), SharedMemoryConfig.RequestDynamic<F4>((shared + 3) / 4)), args);
    }

    /// <summary>Floats of the block's queries in shared memory: per chunk its heads' 8 values (4 heads · 8 = 32 floats),
    /// padded to 36 so that the 4 lanes of a token, reading chunks c, c + 1, c + 2, c + 3, hit different banks.</summary>
    private static int QueryFloats(int chunks) => 36 * chunks;

    /// <summary>Floats of shared memory a group uses: the queries and probabilities, whose space the fold of phase 4 then
    /// reuses; the per-warp maxima; the slots' probability sums.</summary>
    private static int SharedFloats(int d, int hb, int splitSize) => ReusedFloats(d, hb, splitSize) + hb * (d / 8) + 32;

    /// <summary>Floats of the queries and probabilities, or of phase 4's fold, whichever is more.</summary>
    private static int ReusedFloats(int d, int hb, int splitSize) => Math.Max(QueryFloats(d / 8) + hb * PaddedSplit(splitSize), FoldFloats(d));

    /// <summary>Floats of one head's 32 slot rows in phase 4, each padded to a stride ≡ 8 (mod 32) floats so that the
    /// fold's reads (8 channels × 4 slot quarters per warp) hit 32 different banks.</summary>
    private static int FoldStride(int d) => (d + 23) / 32 * 32 + 8;

    private static int FoldFloats(int d) => 32 * FoldStride(d);

    /// <summary>A split's probability rows rounded up to whole rounds of phase 3 (64 tokens), which reads them unguarded.</summary>
    private static int PaddedSplit(int splitSize) => (splitSize + 63) / 64 * 64;

    /// <summary>Where entry j of the token list starts in a view of this thread's K or V chunks, in 8-element chunks:
    /// an int product (checked on launch), since 64-bit address arithmetic costs several instructions per load.</summary>
    private static int Row<T>(in Args a, ArrayView<int> list, int chunks, int j) where T : struct, ITokenList =>
        default(T).Position(a, list, j) * chunks;

    /// <summary>This thread's V chunk of entry j (zero past the split's n entries).</summary>
    private static U4 Value<T>(in Args a, ArrayView<U4> values, ArrayView<int> list, int chunks, int n, int j) where T : struct, ITokenList =>
        j < n ? values[Row<T>(a, list, chunks, j)] : default;

    /// <summary>Head h's query values of one chunk (<paramref name="chunk"/>: the chunk's 9 staged F4s), at constant
    /// offsets from one address.</summary>
    private static Vec8 Query(ArrayView<F4> chunk, int h)
    {
        F4 x = chunk[2 * h], y = chunk[2 * h + 1];
        var v = new Vec8();
        v.F0 = x.X; v.F1 = x.Y; v.F2 = x.Z; v.F3 = x.W; v.F4 = y.X; v.F5 = y.Y; v.F6 = y.Z; v.F7 = y.W;
        return v;
    }

    /// <summary>Adds chunk c of a key to every head's slot accumulators.</summary>
    private static void ScoreChunk(ArrayView<F4> queries, int hb, int c, U4 raw, ref Vec8 s0, ref Vec8 s1, ref Vec8 s2, ref Vec8 s3)
    {
        ScorePair(queries, c, raw, 0, hb > 1, ref s0, ref s1);
        if (hb > 2) ScorePair(queries, c, raw, 2, true, ref s2, ref s3);
    }

    /// <summary>Adds chunk c of a key to the slot accumulators of head h (and h + 1 when <paramref name="both"/>);
    /// <paramref name="queries"/> may start at a lane's first chunk, c counting from there.</summary>
    private static void ScorePair(ArrayView<F4> queries, int c, U4 raw, int h, bool both, ref Vec8 s0, ref Vec8 s1)
    {
        Vec8 k = Loads.WidenF16(raw);
        ArrayView<F4> chunk = queries.SubView(c * 9, 9);
        s0.Fma(k, Query(chunk, h));
        if (both) s1.Fma(k, Query(chunk, h + 1));
    }

    /// <summary>
    /// Folds a token's score for every head of the block and writes it: r0..r3 are this lane's folded slots of each
    /// head; a transposed butterfly over the token's P = 4 lanes: at each of the first log2(hb) steps a lane keeps half of its heads (by
    /// bit h of the lane) and adds the partner's copy of those, so lane part ends with head part / (P / hb). Each
    /// step's sum is L[i] + L[i + h] of the canonical halving (addition commutes), so the bits are the reference's.
    /// </summary>
    /// <param name="writer">Whether this lane writes its head's score (the first of the P / hb lanes that end with it).</param>
    /// <param name="slot">The head (within the block) whose score this lane ends with.</param>
    private static void ScoreToken(in Args a, ArrayView<float> probs, int hb, bool writer, int slot, int part, bool live, int j,
        float r0, float r1, float r2, float r3)
    {
        const int P = Tidal.Core.Numerics.Reduction.ScoreLanes;
        int h = P / 2;
        if (hb == 4)
        {
            bool high = (part & h) != 0;
            float keep0 = high ? r2 : r0, keep1 = high ? r3 : r1, send0 = high ? r0 : r2, send1 = high ? r1 : r3;
            r0 = KernelMath.Add(keep0, Warp.ShuffleXor(send0, h));
            r1 = KernelMath.Add(keep1, Warp.ShuffleXor(send1, h));
            h /= 2;
        }
        if (hb > 1)
        {
            bool high = (part & h) != 0;
            float keep = high ? r1 : r0, send = high ? r0 : r1;
            r0 = KernelMath.Add(keep, Warp.ShuffleXor(send, h));
            h /= 2;
        }
        if (h >= 2) r0 = KernelMath.Add(r0, Warp.ShuffleXor(r0, 2));
        if (h >= 1) r0 = KernelMath.Add(r0, Warp.ShuffleXor(r0, 1));
        if (live && writer) probs[j * hb + slot] = KernelMath.Mul(r0, a.Scale);
    }

    /// <summary>The largest of head h's per-warp maxima, in every lane.</summary>
    private static float WarpsMax(ArrayView<float> warpMax, int h, int warps, int lane) =>
        MaxAcrossLanes(lane < warps ? warpMax[h * warps + lane] : float.NegativeInfinity, 1);

    /// <summary>The max of <paramref name="m"/> over the lanes whose index differs from this lane's only in bits of
    /// value <paramref name="lowest"/> (1, 2 or 4) and up: the xor steps 16 down to <paramref name="lowest"/>, written
    /// out (ILGPU does not unroll loops).</summary>
    private static float MaxAcrossLanes(float m, int lowest)
    {
        m = MathF.Max(m, Warp.ShuffleXor(m, 16));
        m = MathF.Max(m, Warp.ShuffleXor(m, 8));
        m = MathF.Max(m, Warp.ShuffleXor(m, 4));
        if (lowest <= 2) m = MathF.Max(m, Warp.ShuffleXor(m, 2));
        if (lowest <= 1) m = MathF.Max(m, Warp.ShuffleXor(m, 1));
        return m;
    }

    /// <summary>Adds entry j's p·v for every head of the block (p = −0 past the split's entries, where v = 0: fma(−0, 0, x)
    /// and x + −0 are x for every x, so the padding changes no bits).</summary>
    private static void Accumulate(ArrayView<float> probs, ArrayView<F4> probs4, int hb, int j, U4 raw, ref float d0, ref float d1, ref float d2, ref float d3,
        ref Vec8 o0, ref Vec8 o1, ref Vec8 o2, ref Vec8 o3)
    {
        Vec8 v = Loads.WidenF16(raw);
        if (hb == 4)
        {
            F4 p = probs4[j];
            d0 = KernelMath.Add(d0, p.X); o0.Fma(p.X, v);
            d1 = KernelMath.Add(d1, p.Y); o1.Fma(p.Y, v);
            d2 = KernelMath.Add(d2, p.Z); o2.Fma(p.Z, v);
            d3 = KernelMath.Add(d3, p.W); o3.Fma(p.W, v);
            return;
        }
        float p0 = probs[j * hb];
        d0 = KernelMath.Add(d0, p0); o0.Fma(p0, v);
        if (hb > 1) { float p1 = probs[j * hb + 1]; d1 = KernelMath.Add(d1, p1); o1.Fma(p1, v); }
    }

    private static void Run<T, H, D>(Args a) where T : struct, ITokenList where H : struct, IHeadBlock where D : struct, IHeadDim
    {
        ArrayView<F4> shared4 = SharedMemory.GetDynamic<F4>();
        int hb = default(H).Heads, firstHead = Grid.IdxX * hb, row = Grid.IdxY / a.SplitsPerRow, split = Grid.IdxY % a.SplitsPerRow;
        int tid = Group.IdxX, warp = tid / 32, lane = tid % 32;
        int count = a.Count + row; // a causal row sees one more position than the row before
        int chunks = default(D).Chunks(a), d = chunks * 8, threads = 32 * chunks;
        int S = a.Rows > 1 ? Tidal.Core.Reference.Attention.DecodeSplitSize(count) : a.SplitSize;
        int splits = (count + S - 1) / S;
        if (split >= Math.Max(splits, 1)) return; // this row needs fewer splits than the longest: the whole group leaves
        int splitStart = split * S;
        int n = Math.Min(S, count - splitStart);
        // Shared memory: the block's queries; probs[j · hb + h], entry j's scores, then probabilities, of the block's
        // heads side by side (one load in phase 3); per-warp maxima; slot sums. Phase 4's fold reuses the first two.
        ArrayView<F4> queries = shared4.SubView(0, QueryFloats(chunks) / 4);
        ArrayView<F4> probs4 = shared4.SubView(QueryFloats(chunks) / 4, hb * PaddedSplit(a.SplitSize) / 4);
        ArrayView<float> probs = probs4.Cast<float>();
        int reused = ReusedFloats(d, hb, a.SplitSize);
        ArrayView<float> warpMax = shared4.Cast<float>().SubView(reused, hb * chunks);
        ArrayView<float> slotSums = shared4.Cast<float>().SubView(reused + hb * chunks, 32);
        long kvBase = (long)(firstHead / a.Group) * a.Capacity * chunks; // in 8-element chunks
        long listBase = (a.Mode == Modes.PerQueryHead ? (long)firstHead * a.Count
            : a.Mode == Modes.PerKvHead ? (long)(firstHead / a.Group) * a.Count : 0L) + splitStart;
        if (a.Mode == Modes.Range) kvBase += splitStart * (long)chunks;
        ArrayView<F4> q = a.Q.Cast<F4>();
        for (int e = tid; e < hb * 2 * chunks; e += threads) // (head, chunk, half) → queries[chunk · 9 + 2 · head + half]
        {
            int h = e / (2 * chunks), c = e / 2 % chunks, half = e % 2;
            queries[c * 9 + 2 * h + half] = q[((long)row * a.QStride + (long)(firstHead + h) * d) / 4 + 2 * c + half];
        }

        // Phase 1: s_j = Dot(k_j, q_h) · scale for every head of the block in the score order: ScoreLanes = 4 lanes per
        // token, lane `part` taking chunks part, part + 4, … into 8 fma slots per head, two chunks' loads in flight.
        const int P = Tidal.Core.Numerics.Reduction.ScoreLanes;
        int perPass = threads / P, sub = tid / P, part = tid % P, lanesPerHead = P / hb;
        bool writer = part % lanesPerHead == 0;
        int slot = part / lanesPerHead;
        // This thread's first K chunk and its V chunk of every position, and the block's token list from the split's start.
        ArrayView<U4> keys = a.Keys.Cast<U4>(), values = a.Values.Cast<U4>();
        // Lanes past a short head's chunks (d < 32) load nothing; their view starts at chunk 0 so that it stays inside the
        // cache even for a split of the last head's last positions (else the guard below would send them away early).
        int vc = tid % chunks, vt = tid / chunks; // phase 3: this thread's channel chunk and token slot
        long keyStart = kvBase + (part < chunks ? part : 0), valueStart = kvBase + vc;
        keys = keys.SubView(keyStart, keys.Length - keyStart);
        values = values.SubView(valueStart, values.Length - valueStart);
        ArrayView<int> list = a.Mode == Modes.Range ? a.Indices : a.Indices.SubView(listBase, a.Indices.Length - listBase);
        // ILGPU places each value next to its first use, so values first used inside a loop are recomputed on every
        // iteration (these include divisions). This never-true check uses them here, which keeps them here.
        // The lane's staged queries from its first chunk: for d = 128 its four chunks are then constant offsets from one
        // address (one register instead of four recomputed per pass). Lanes past a short head's chunks use none.
        int firstQuery = (part < chunks ? part : 0) * 9;
        ArrayView<F4> laneQueries = queries.SubView(firstQuery, queries.Length - firstQuery);
        if (keys.Length <= 0 || values.Length <= 0 || list.Length <= 0 || laneQueries.Length <= 0 || perPass <= 0 || sub < 0 || (writer && slot < 0)) return;
        Group.Barrier();
        for (int first = 0; first < n; first += perPass) // a group-uniform bound: the folds shuffle whole warps
        {
            int j = first + sub;
            bool live = j < n;
            // A lane past the split's entries scores entry n − 1 again and writes nothing (a token's lanes fold only with
            // each other), so its loads need no predicate and its registers no zeroing.
            int at = Row<T>(a, list, chunks, live ? j : n - 1);
            float r0, r1, r2 = 0f, r3 = 0f;
            if (chunks == 4 * P)
            {
                // d = 128 (compiled in), written out (a loop's carried slots cost moves: ILGPU does not unroll): the
                // lane's four chunks all in flight, then two heads at a time (16 slot registers rather than 32, which is
                // what leaves room for the four loads under the register cap).
                ArrayView<U4> key = keys.SubView(at, 3 * P + 1); // one address, the chunks at constant offsets
                U4 x = key[0], y = key[P], z = key[2 * P], w = key[3 * P];
                Vec8 s0 = new Vec8(), s1 = new Vec8();
                ScorePair(laneQueries, 0, x, 0, hb > 1, ref s0, ref s1);
                ScorePair(laneQueries, P, y, 0, hb > 1, ref s0, ref s1);
                ScorePair(laneQueries, 2 * P, z, 0, hb > 1, ref s0, ref s1);
                ScorePair(laneQueries, 3 * P, w, 0, hb > 1, ref s0, ref s1);
                r0 = KernelMath.FoldSlots(s0);
                r1 = hb > 1 ? KernelMath.FoldSlots(s1) : 0f;
                if (hb > 2)
                {
                    Vec8 s2 = new Vec8(), s3 = new Vec8();
                    ScorePair(laneQueries, 0, x, 2, true, ref s2, ref s3);
                    ScorePair(laneQueries, P, y, 2, true, ref s2, ref s3);
                    ScorePair(laneQueries, 2 * P, z, 2, true, ref s2, ref s3);
                    ScorePair(laneQueries, 3 * P, w, 2, true, ref s2, ref s3);
                    r2 = KernelMath.FoldSlots(s2);
                    r3 = KernelMath.FoldSlots(s3);
                }
            }
            else
            {
                Vec8 s0 = new Vec8(), s1 = new Vec8(), s2 = new Vec8(), s3 = new Vec8();
                for (int c = part; c < chunks; c += 2 * P)
                {
                    bool next = c + P < chunks;
                    U4 x = keys[at + c - part], y = next ? keys[at + c - part + P] : default;
                    ScoreChunk(queries, hb, c, x, ref s0, ref s1, ref s2, ref s3);
                    if (next) ScoreChunk(queries, hb, c + P, y, ref s0, ref s1, ref s2, ref s3);
                }
                r0 = KernelMath.FoldSlots(s0);
                r1 = hb > 1 ? KernelMath.FoldSlots(s1) : 0f;
                r2 = hb > 2 ? KernelMath.FoldSlots(s2) : 0f;
                r3 = hb > 2 ? KernelMath.FoldSlots(s3) : 0f;
            }
            ScoreToken(a, probs, hb, writer, slot, part, live, j, r0, r1, r2, r3);
        }
        // Phase 3's first two V rows of this thread's token slot: they do not wait for the scores, so their loads fly
        // during phase 2 (later rounds load after each round's accumulation).
        U4 v0 = Value<T>(a, values, list, chunks, n, vt), v1 = Value<T>(a, values, list, chunks, n, vt + 32);
        Group.Barrier();

        // Phase 2: per head m = max s_j (exact in any order), logits out, p_j = Exp(s_j − m), −0 up to the padded end.
        // Threads is a multiple of hb, so entry e = j · hb + h of every thread's stride has the same head h = tid % hb,
        // and a warp's lanes of one head fold by the xor steps that are multiples of hb.
        int mine = tid % hb, entries = n * hb;
        float m = float.NegativeInfinity;
        for (int e = tid; e < entries; e += threads) m = MathF.Max(m, probs[e]);
        m = MaxAcrossLanes(m, hb);
        if (lane < hb) warpMax[lane * chunks + warp] = m;
        Group.Barrier();
        // Every warp folds the per-warp maxima itself, lane w holding warp w's (chunks ≤ 32 warps).
        float m0 = WarpsMax(warpMax, 0, chunks, lane);
        float m1 = hb > 1 ? WarpsMax(warpMax, 1, chunks, lane) : float.NegativeInfinity;
        float m2 = hb > 2 ? WarpsMax(warpMax, 2, chunks, lane) : float.NegativeInfinity;
        float m3 = hb > 2 ? WarpsMax(warpMax, 3, chunks, lane) : float.NegativeInfinity;
        m = mine == 0 ? m0 : mine == 1 ? m1 : mine == 2 ? m2 : m3;
        long logitsRow = (long)(firstHead + mine) * a.Count + splitStart;
        int padded = PaddedSplit(n) * hb;
        for (int e = tid; e < padded; e += threads)
        {
            float p = -0f;
            if (e < entries)
            {
                float s = probs[e];
                if (a.WriteLogits != 0) a.Logits[logitsRow + e / hb] = s;
                p = KernelMath.Exp(KernelMath.Sub(s, m));
            }
            probs[e] = p;
        }
        Group.Barrier();

        // Phase 3: token slot vt, channel chunk vc: D and O accumulate in token order with fma, 2 tokens in flight; every
        // thread runs every round (the padding's p is −0), so the loop carries no per-token branches.
        Vec8 o0 = new Vec8(), o1 = new Vec8(), o2 = new Vec8(), o3 = new Vec8();
        float d0 = 0f, d1 = 0f, d2 = 0f, d3 = 0f;
        for (int j0 = vt; j0 - vt < n; j0 += 64)
        {
            Accumulate(probs, probs4, hb, j0, v0, ref d0, ref d1, ref d2, ref d3, ref o0, ref o1, ref o2, ref o3);
            v0 = Value<T>(a, values, list, chunks, n, j0 + 64);
            Accumulate(probs, probs4, hb, j0 + 32, v1, ref d0, ref d1, ref d2, ref d3, ref o0, ref o1, ref o2, ref o3);
            v1 = Value<T>(a, values, list, chunks, n, j0 + 96);
        }

        // Phase 4, per head: slot rows into shared memory, then thread (channel tid / 4, first slot f = tid % 4; 4d
        // threads) reads slots f, f + 4, …, f + 28: the halvings by 16, 8 and 4 pair only its own slots, those by 2 and
        // 1 pair lanes f ^ 2 and f ^ 1, so each sum is L[i] + L[i + h] of the canonical halving (addition commutes).
        // Empty slots are +0, which changes no bits; the result is normalised within the split.
        int valid = n > 0 ? 1 : 0, stride = FoldStride(d), ch = tid / 4, firstSlot = tid % 4;
        ArrayView<float> fold = shared4.Cast<float>().SubView(0, FoldFloats(d));
        ArrayView<F4> row4 = fold.Cast<F4>().SubView((vt * stride + 8 * vc) / 4, 2);
        ArrayView<float> quarter = fold.SubView(firstSlot * stride + ch, 28 * stride + 1);
        ArrayView<float> target = splits <= 1 ? a.Output : a.Partials;
        for (int h = 0; h < hb; h++)
        {
            Vec8 o = h == 0 ? o0 : h == 1 ? o1 : h == 2 ? o2 : o3;
            Group.Barrier(); // phase 3's probabilities, or the previous head's slots, are read by now
            row4[0] = new F4 { X = o.F0, Y = o.F1, Z = o.F2, W = o.F3 };
            row4[1] = new F4 { X = o.F4, Y = o.F5, Z = o.F6, W = o.F7 };
            if (vc == 0) slotSums[vt] = h == 0 ? d0 : h == 1 ? d1 : h == 2 ? d2 : d3;
            Group.Barrier();
            float s0 = KernelMath.Add(quarter[0], quarter[16 * stride]), s1 = KernelMath.Add(quarter[4 * stride], quarter[20 * stride]);
            float s2 = KernelMath.Add(quarter[8 * stride], quarter[24 * stride]), s3 = KernelMath.Add(quarter[12 * stride], quarter[28 * stride]);
            float e = KernelMath.FoldFourLanes(KernelMath.Add(KernelMath.Add(s0, s2), KernelMath.Add(s1, s3)));
            float total = KernelMath.FoldLanes(slotSums[lane]);
            int head = firstHead + h;
            long state = ((long)row * a.SplitsPerRow + split) * a.Heads + head;
            long outBase = splits <= 1 ? ((long)row * a.Heads + head) * d : state * d;
            if (firstSlot == 0) target[outBase + ch] = valid != 0 ? e / total : 0f;
            if (tid == 0 && splits > 1)
            {
                float hm = h == 0 ? m0 : h == 1 ? m1 : h == 2 ? m2 : m3;
                a.Lse[state] = valid != 0 ? KernelMath.Add(hm, KernelMath.Log(total)) : float.NegativeInfinity;
            }
        }
        if (splits <= 1) return;

        // Phase 5: the (row, head block)'s last split to finish merges its heads (the ticket reuses the slot sums' space).
        if (!LastGroup.Arrive(a.Tickets.SubView((long)row * Grid.DimX + Grid.IdxX, 1), splits, slotSums.Cast<int>().SubView(0, 1))) return;
        for (int h = 0; h < hb; h++)
        {
            var merge = new MergeStates.Head
            {
                Partials = a.Partials, Lses = a.Lse, Output = a.Output,
                First = (long)row * a.SplitsPerRow * a.Heads + firstHead + h, OutputAt = ((long)row * a.Heads + firstHead + h) * d,
                Splits = splits, Heads = a.Heads, HeadDim = d,
            };
            MergeStates.Merge(merge, warp, lane);
        }
    }
}
