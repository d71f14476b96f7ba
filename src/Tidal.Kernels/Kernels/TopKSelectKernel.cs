using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Top-k selection spread over many groups per row: each row is cut into chunks of <see cref="ChunkSize"/> positions,
/// one group of 256 threads per (chunk, row). A radix select on order-preserving keys finds the threshold in three
/// passes of 11, 11 and 10 bits; each pass builds a chunk histogram in shared memory and adds it to the row's
/// histogram in global memory (integer atomics, so counts are exact), and every group of the next launch replays the
/// digit choices from those histograms. A counting launch then records, per chunk, the keys above the threshold and
/// equal to it, and the writing launch places each chunk's picks (forced positions, keys above the threshold, and the
/// lowest-positioned keys equal to it) at its offset, so the output is ascending. Six launches in all, each reading
/// the scores once (from L2 after the first).
/// Reference: Tidal.Core.Reference.TopK.Select, identical sets.
/// </summary>
public sealed class TopKSelectKernel
{
    private const int Threads = 256;
    private const int PerThread = 16;
    private const int Bins = 2048;
    private const int Passes = 3;

    /// <summary>Positions per group.</summary>
    public const int ChunkSize = Threads * PerThread;
    private const int SkewedChunk = ChunkSize + ChunkSize / 32;

    /// <summary>Arguments of one launch.</summary>
    public struct Args
    {
        /// <summary>Scores [rows, N].</summary>
        public ArrayView<float> Scores;
        /// <summary>Selected positions [rows, K], ascending.</summary>
        public ArrayView<int> Output;
        /// <summary>Histograms [Passes, rows, Bins], zero before the first pass.</summary>
        public ArrayView<int> Histograms;
        /// <summary>Per chunk (keys above the threshold, keys equal to it), [rows, chunks, 2].</summary>
        public ArrayView<int> Counts;
        /// <summary>Positions per row (the current token is N − 1).</summary>
        public int N;
        /// <summary>Selected per row: min(budget, N).</summary>
        public int K;
        /// <summary>Forced leading positions.</summary>
        public int Sinks;
        /// <summary>Forced trailing positions (at least the current token).</summary>
        public int Window;
        /// <summary>Rows.</summary>
        public int Rows;
    }

    private readonly Action<KernelConfig, Args, int> _histogram;
    private readonly Action<KernelConfig, Args> _count, _write;

    /// <summary>Compiles the kernels.</summary>
    public TopKSelectKernel(Accelerator accelerator)
    {
        _histogram = accelerator.LoadStreamKernel<Args, int>(Histogram);
        _count = accelerator.LoadStreamKernel<Args>(Count);
        _write = accelerator.LoadStreamKernel<Args>(Write);
    }

    /// <summary>Chunks (groups) per row of <paramref name="n"/> positions.</summary>
    public static int Chunks(int n) => Math.Max(1, (n + ChunkSize - 1) / ChunkSize);

    /// <summary>Scratch ints one selection needs: histograms, then per-chunk counts.</summary>
    public static long ScratchSize(int rows, int n) => (long)Passes * rows * Bins + 2L * rows * Chunks(n);

    /// <summary>Selects for <c>args.Rows</c> rows; <paramref name="scratch"/> holds <see cref="ScratchSize"/> ints.</summary>
    public void Launch(Args args, ArrayView<int> scratch)
    {
        long histograms = (long)Passes * args.Rows * Bins;
        args.Histograms = scratch.SubView(0, histograms);
        args.Counts = scratch.SubView(histograms, 2L * args.Rows * Chunks(args.N));
        var grid = new KernelConfig(new Index2D(Chunks(args.N), args.Rows), new Index2D(Threads, 1));
        if (args.K < args.N)
        {
            args.Histograms.MemSetToZero();
            for (int pass = 0; pass < Passes; pass++) _histogram(grid, args, pass);
            _count(grid, args);
        }
        _write(grid, args);
    }

    private static int Shift(int pass) => pass == 0 ? 21 : pass == 1 ? 10 : 0;

    private static uint DigitMask(int pass) => pass == 2 ? 0x3FFu : 0x7FFu;

    private static bool Forced(int t, int sinks, int windowStart) => t < sinks || t >= windowStart;

    /// <summary><see cref="BlockScan.Exclusive"/> of a non-negative count per thread.</summary>
    private static int Scan(ArrayView<ulong> scratch, int count, out int total)
    {
        ulong before = BlockScan.Exclusive(scratch, (ulong)count, out ulong sum);
        total = (int)sum;
        return (int)before;
    }

    private static int WindowStart(in Args a) => Math.Max(0, a.N - Math.Max(a.Window, 1));

    /// <summary>
    /// Replays the digit choices of the first <paramref name="passes"/> passes from the row's histograms: the key
    /// prefix chosen so far, its mask, and how many keys with that prefix remain to be taken. With nothing to select
    /// beyond the forced positions, the prefix is a key no score reaches (0xFFFFFFFF) and nothing remains.
    /// </summary>
    private static void Resolve(in Args a, int row, int passes, ArrayView<ulong> scan, ArrayView<int> found, out uint prefix, out uint mask, out int remaining)
    {
        int n = a.N, sinks = Math.Min(a.Sinks, n), windowStart = WindowStart(a);
        int forcedCount = sinks + (n - windowStart) - Math.Max(0, sinks - windowStart);
        remaining = a.K - forcedCount;
        prefix = 0xFFFF_FFFFu;
        mask = 0;
        if (remaining <= 0) { remaining = 0; return; }
        prefix = 0;
        int tid = Group.IdxX;
        for (int pass = 0; pass < passes; pass++)
        {
            // Thread t owns the 8 bins [Bins − 8t − 8, Bins − 8t), so the scan runs from the largest digit down.
            // Two 16-byte loads per thread (one round trip), then the owner walks its bins down from the top.
            ArrayView<U4> histogram = a.Histograms.SubView(((long)pass * a.Rows + row) * Bins, Bins).Cast<U4>();
            int top = Bins - 8 * tid;
            U4 low = histogram[(top - 8) / 4], high = histogram[(top - 4) / 4];
            int sum = (int)(low.X + low.Y + low.Z + low.W + high.X + high.Y + high.Z + high.W);
            int before = Scan(scan, sum, out int _);
            if (before < remaining && remaining <= before + sum)
            {
                int r = remaining - before, digit = top - 1;
                bool done = false;
                Walk((int)high.W, ref r, ref digit, ref done); Walk((int)high.Z, ref r, ref digit, ref done);
                Walk((int)high.Y, ref r, ref digit, ref done); Walk((int)high.X, ref r, ref digit, ref done);
                Walk((int)low.W, ref r, ref digit, ref done); Walk((int)low.Z, ref r, ref digit, ref done);
                Walk((int)low.Y, ref r, ref digit, ref done);
                found[0] = digit;
                found[1] = r;
            }
            Group.Barrier();
            prefix |= (uint)found[0] << Shift(pass);
            mask |= DigitMask(pass) << Shift(pass);
            remaining = found[1];
            Group.Barrier();
        }
    }

    /// <summary>One step down from bin <paramref name="digit"/> (holding <paramref name="count"/> keys): if fewer keys
    /// than still needed sit there, take them all and move to the next lower bin; else the threshold digit is found.</summary>
    private static void Walk(int count, ref int r, ref int digit, ref bool done)
    {
        if (done) return;
        if (count < r) { r -= count; digit--; }
        else done = true;
    }

    private static void Histogram(Args a, int pass)
    {
        ArrayView<int> local = SharedMemory.Allocate<int>(Bins);
        ArrayView<ulong> scan = SharedMemory.Allocate<ulong>(Threads);
        ArrayView<int> found = SharedMemory.Allocate<int>(2);
        int chunk = Grid.IdxX, row = Grid.IdxY, tid = Group.IdxX;
        Resolve(a, row, pass, scan, found, out uint prefix, out uint mask, out int remaining);
        if (remaining == 0) return;
        for (int b = tid; b < Bins; b += Threads) local[b] = 0;
        Group.Barrier();
        int sinks = Math.Min(a.Sinks, a.N), windowStart = WindowStart(a), shift = Shift(pass);
        uint digitMask = DigitMask(pass);
        long rowBase = (long)row * a.N;
        int end = Math.Min(a.N, (chunk + 1) * ChunkSize);
        for (int t = chunk * ChunkSize + tid; t < end; t += 4 * Threads)
        {
            // Four loads in flight per thread; a histogram does not care in which order it counts.
            float x0 = a.Scores[rowBase + t];
            float x1 = t + Threads < end ? a.Scores[rowBase + t + Threads] : 0f;
            float x2 = t + 2 * Threads < end ? a.Scores[rowBase + t + 2 * Threads] : 0f;
            float x3 = t + 3 * Threads < end ? a.Scores[rowBase + t + 3 * Threads] : 0f;
            CountDigit(local, x0, t, end, sinks, windowStart, prefix, mask, shift, digitMask);
            CountDigit(local, x1, t + Threads, end, sinks, windowStart, prefix, mask, shift, digitMask);
            CountDigit(local, x2, t + 2 * Threads, end, sinks, windowStart, prefix, mask, shift, digitMask);
            CountDigit(local, x3, t + 3 * Threads, end, sinks, windowStart, prefix, mask, shift, digitMask);
        }
        Group.Barrier();
        long global = ((long)pass * a.Rows + row) * Bins;
        for (int b = tid; b < Bins; b += Threads)
            if (local[b] != 0) Atomic.Add(ref a.Histograms[global + b], local[b]);
    }

    private static void CountDigit(ArrayView<int> local, float score, int t, int end, int sinks, int windowStart, uint prefix, uint mask, int shift, uint digitMask)
    {
        if (t >= end || Forced(t, sinks, windowStart)) return;
        uint key = KernelMath.OrderedKey(score);
        if ((key & mask) == prefix) Atomic.Add(ref local[(int)((key >> shift) & digitMask)], 1);
    }

    /// <summary>Where key i of a chunk lives in shared memory: one padding word per 32 keys, so the 32 lanes of a warp
    /// reading their runs (16 apart) hit 32 different banks.</summary>
    private static int Skewed(int i) => i + i / 32;

    /// <summary>Loads the chunk's keys into shared memory with coalesced loads, four in flight per thread.</summary>
    private static void LoadKeys(in Args a, ArrayView<uint> keys, long rowBase, int first, int end)
    {
        for (int i = Group.IdxX; first + i < end; i += 4 * Threads)
        {
            int t = first + i;
            float x0 = a.Scores[rowBase + t];
            float x1 = t + Threads < end ? a.Scores[rowBase + t + Threads] : 0f;
            float x2 = t + 2 * Threads < end ? a.Scores[rowBase + t + 2 * Threads] : 0f;
            float x3 = t + 3 * Threads < end ? a.Scores[rowBase + t + 3 * Threads] : 0f;
            keys[Skewed(i)] = KernelMath.OrderedKey(x0);
            if (t + Threads < end) keys[Skewed(i + Threads)] = KernelMath.OrderedKey(x1);
            if (t + 2 * Threads < end) keys[Skewed(i + 2 * Threads)] = KernelMath.OrderedKey(x2);
            if (t + 3 * Threads < end) keys[Skewed(i + 3 * Threads)] = KernelMath.OrderedKey(x3);
        }
        Group.Barrier();
    }

    private static void Count(Args a)
    {
        ArrayView<ulong> scan = SharedMemory.Allocate<ulong>(Threads);
        ArrayView<int> found = SharedMemory.Allocate<int>(2);
        int chunk = Grid.IdxX, row = Grid.IdxY, tid = Group.IdxX;
        ArrayView<uint> keys = SharedMemory.Allocate<uint>(SkewedChunk);
        Resolve(a, row, Passes, scan, found, out uint threshold, out uint _, out int _);
        int sinks = Math.Min(a.Sinks, a.N), windowStart = WindowStart(a), first = chunk * ChunkSize;
        int end = Math.Min(a.N, first + ChunkSize), above = 0, equal = 0;
        LoadKeys(a, keys, (long)row * a.N, first, end);
        for (int t = first + tid; t < end; t += Threads)
        {
            if (Forced(t, sinks, windowStart)) { above++; continue; }
            uint key = keys[Skewed(t - first)];
            if (key > threshold) above++;
            else if (key == threshold) equal++;
        }
        Scan(scan, above, out int aboveTotal);
        Scan(scan, equal, out int equalTotal);
        long at = ((long)row * Grid.DimX + chunk) * 2;
        if (tid == 0) { a.Counts[at] = aboveTotal; a.Counts[at + 1] = equalTotal; }
    }

    /// <summary>Σ of one per-chunk count over the chunks before <paramref name="chunk"/>, summed by the whole group.</summary>
    private static int CountBefore(in Args a, ArrayView<ulong> scan, int row, int chunk, int which)
    {
        int sum = 0;
        for (int c0 = 0; c0 < chunk; c0 += Threads)
        {
            int c = c0 + Group.IdxX;
            Scan(scan, c < chunk ? a.Counts[((long)row * Grid.DimX + c) * 2 + which] : 0, out int total);
            sum += total;
        }
        return sum;
    }

    private static void Write(Args a)
    {
        ArrayView<ulong> scan = SharedMemory.Allocate<ulong>(Threads);
        ArrayView<int> found = SharedMemory.Allocate<int>(2);
        ArrayView<uint> keys = SharedMemory.Allocate<uint>(SkewedChunk);
        int chunk = Grid.IdxX, row = Grid.IdxY, tid = Group.IdxX, n = a.N;
        long inBase = (long)row * n, outBase = (long)row * a.K;
        int runStart = chunk * ChunkSize + tid * PerThread, runEnd = Math.Min(runStart + PerThread, n);
        if (a.K >= n)
        {
            for (int t = runStart; t < runEnd; t++) a.Output[outBase + t] = t;
            return;
        }
        Resolve(a, row, Passes, scan, found, out uint threshold, out uint _, out int needEqual);
        int sinks = Math.Min(a.Sinks, n), windowStart = WindowStart(a);
        int aboveBefore = CountBefore(a, scan, row, chunk, 0), equalBefore = CountBefore(a, scan, row, chunk, 1);
        int first = chunk * ChunkSize;
        LoadKeys(a, keys, inBase, first, Math.Min(n, first + ChunkSize));
        // Thread t owns a run of PerThread consecutive positions, so one pair of block scans serves the whole chunk.
        int equals = 0;
        for (int t = runStart; t < runEnd; t++)
            if (!Forced(t, sinks, windowStart) && keys[Skewed(t - first)] == threshold) equals++;
        int equalRank = Scan(scan, equals, out int _) + equalBefore;
        int selectedHere = 0;
        for (int t = runStart, rank = equalRank; t < runEnd; t++)
        {
            if (Forced(t, sinks, windowStart)) { selectedHere++; continue; }
            uint key = keys[Skewed(t - first)];
            if (key > threshold) selectedHere++;
            else if (key == threshold) { if (rank < needEqual) selectedHere++; rank++; }
        }
        int slot = Scan(scan, selectedHere, out int _) + aboveBefore + Math.Min(equalBefore, needEqual);
        for (int t = runStart, rank = equalRank; t < runEnd; t++)
        {
            bool take = Forced(t, sinks, windowStart);
            if (!take)
            {
                uint key = keys[Skewed(t - first)];
                take = key > threshold || (key == threshold && rank++ < needEqual);
            }
            if (take) a.Output[outBase + slot++] = t;
        }
    }
}
