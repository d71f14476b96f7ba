using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Top-k selection. Where the device holds the whole grid at once, one launch whose groups keep their keys resident
/// (TopKSelectKernel.Resident.cs); otherwise four launches: a radix select on order-preserving keys whose first two
/// 12-bit digits are counted by many groups per row (where the scores are read), and whose last 8 bits are resolved
/// among the few keys that share the threshold's first 24 bits:
/// <list type="number">
/// <item>Histogram, twice (chunks × rows): each chunk of <see cref="ChunkSize"/> positions counts a digit of its keys
/// in shared memory (the top 12 bits of the unforced keys; then bits 19..8 of the keys in the threshold's bucket) and
/// adds the counts to the row's histogram; the row's last group to finish finds the threshold's digit and how many keys
/// with it are still needed, and zeroes the histogram for the next selection. One digit is not enough: scores crowd
/// into few buckets (a group's aggregated probabilities can share one), and the refining group is one per row.</item>
/// <item>Gather (chunks × rows): each chunk counts what it selects outright (forced positions, keys above the
/// threshold's 24-bit prefix) and appends the keys with that prefix (the candidates, few unless scores tie) to the
/// row's list. The row's last group to finish refines: an 8-bit radix pass over the candidates gives the threshold key
/// T and how many keys equal to it are taken; when that is fewer than all of them, three passes over their positions
/// find the last one taken (ties go to the lowest positions). Then each chunk's offset in the output.</item>
/// <item>Write (chunks × rows): each chunk writes its selected positions, ascending, at its offset.</item>
/// </list>
/// Every group that adds to a row's counters takes a ticket after a device fence, and the last one resets what the
/// row's groups counted, so the counters are zero again after each selection and no launch clears them. Each group
/// issues its 16 score loads per thread together (ILGPU does not unroll loops, so a load in a loop waits a whole memory
/// latency per iteration), and the per-position work is a few instructions.
/// Reference: Tidal.Core.Reference.TopK.Select, identical sets.
/// </summary>
public sealed partial class TopKSelectKernel
{
    private const int Threads = 256;
    private const int PerThread = 16;
    private const int BucketShift = 20;
    private const int Buckets = 1 << (32 - BucketShift);

    /// <summary>Bins of the refining passes (an 8-bit key digit, 11-bit position digits) and, after them, the chunk
    /// offsets: also the most chunks a row may have.</summary>
    private const int RefineBins = 2048;

    /// <summary>Positions per group.</summary>
    public const int ChunkSize = Threads * PerThread;
    private const int SkewedChunk = ChunkSize + ChunkSize / 32;

    /// <summary>The longest row: one refining group holds an offset per chunk.</summary>
    public const int MaxPositions = RefineBins * ChunkSize;

    /// <summary>Per-row counters, zero between selections: the three launches' tickets (a histogram level's at its
    /// level) and the candidate count.</summary>
    private const int CounterInts = 4;
    private const int GatherTicketAt = 2, CandidatesAt = 3;

    /// <summary>Per-row state: per histogram level the threshold's digit and how many keys with it are needed; the
    /// threshold key; the last position taken among the keys equal to it.</summary>
    private const int StateInts = 6;
    private const int LevelInts = 2, DigitOffset = 0, NeededOffset = 1, ThresholdAt = 4, LastEqualAt = 5;

    /// <summary>Arguments of one launch.</summary>
    public struct Args
    {
        /// <summary>Scores [rows, N].</summary>
        public ArrayView<float> Scores;
        /// <summary>Selected positions [rows, K], ascending.</summary>
        public ArrayView<int> Output;
        /// <summary>Digit counts [2 levels, rows, 4096]; zero before and after a selection.</summary>
        public ArrayView<int> Histograms;
        /// <summary>Tickets and candidate counts [rows, 4]; zero before and after a selection.</summary>
        public ArrayView<int> Counters;
        /// <summary>Per-row state [rows, 4].</summary>
        public ArrayView<int> State;
        /// <summary>Per chunk: selected positions outside the candidates, then (after the refinement) the chunk's output offset; [rows, chunks].</summary>
        public ArrayView<int> Counts;
        /// <summary>Candidate keys [rows, N].</summary>
        public ArrayView<uint> CandidateKeys;
        /// <summary>Candidate positions [rows, N].</summary>
        public ArrayView<int> CandidatePositions;
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
        /// <summary>Candidates the refining group keeps in shared memory (at most <see cref="ChunkSize"/>).</summary>
        public int SharedCapacity;
    }

    private readonly Action<KernelConfig, Args, int> _histogram;
    private readonly Action<KernelConfig, Args> _gather, _write;

    /// <summary>Compiles the kernels.</summary>
    public TopKSelectKernel(Accelerator accelerator)
    {
        _histogram = accelerator.LoadStreamKernel<Args, int>(Histogram);
        _gather = accelerator.LoadStreamKernel<Args>(Gather);
        _write = accelerator.LoadStreamKernel<Args>(Write);
        // Registers capped so that four groups share an SM (the 512 groups of 32 rows × 128K then fit an H100's or H200's
        // 132 SMs); the CPU accelerator rejects launch bounds.
        _resident = accelerator.LoadStreamKernel<Args>(Resident, accelerator.AcceleratorType == AcceleratorType.Cuda
            ? new KernelSpecialization(ResidentThreads, 4) : KernelSpecialization.Empty);
        _residentSlots = ResidentSlots(accelerator, _resident);
    }

    /// <summary>Chunks (groups) per row of <paramref name="n"/> positions.</summary>
    public static int Chunks(int n) => Math.Max(1, (n + ChunkSize - 1) / ChunkSize);

    /// <summary>Ints of the counters a selection over <paramref name="rows"/> rows uses: zero before the first
    /// selection, and left zero by each.</summary>
    public static long CounterSize(int rows) => (long)rows * (2 * Buckets + CounterInts);

    /// <summary>Scratch ints one selection needs beside its counters: states, chunk counts, candidates.</summary>
    public static long ScratchSize(int rows, int n) => (long)rows * (StateInts + Chunks(n) + 2L * n);

    /// <summary>Selects for <c>args.Rows</c> rows.</summary>
    /// <param name="args">The launch; its scratch views are set here.</param>
    /// <param name="counters"><see cref="CounterSize"/> ints, zero (every selection leaves them so).</param>
    /// <param name="scratch"><see cref="ScratchSize"/> ints.</param>
    /// <param name="sharedCandidates">Candidates per row the refining group keeps in shared memory (0 to
    /// <see cref="ChunkSize"/>): tests lower it to exercise the path that reads them from global memory.</param>
    /// <param name="resident">Whether the one-launch resident path may serve (when its grid fits the device at once):
    /// tests and the verification command turn it off to run the four-launch path.</param>
    public void Launch(Args args, ArrayView<int> counters, ArrayView<int> scratch, int sharedCandidates = ChunkSize, bool resident = true)
    {
        if (sharedCandidates is < 0 or > ChunkSize) throw new ArgumentOutOfRangeException(nameof(sharedCandidates), sharedCandidates, $"must be within 0..{ChunkSize}.");
        if (args.N > MaxPositions) throw new ArgumentException($"top-k over {args.N} positions per row: at most {MaxPositions} are supported.", nameof(args));
        if (counters.Length < CounterSize(args.Rows)) throw new ArgumentException($"top-k over {args.Rows} rows needs {CounterSize(args.Rows)} counter ints, got {counters.Length}.", nameof(counters));
        if (scratch.Length < ScratchSize(args.Rows, args.N)) throw new ArgumentException($"top-k over {args.Rows} x {args.N} needs {ScratchSize(args.Rows, args.N)} scratch ints, got {scratch.Length}.", nameof(scratch));
        if (resident && args.K < args.N && TryResidentShape(args.Rows, args.N, out int groupsPerRow))
        {
            LaunchResident(args, counters, scratch, groupsPerRow);
            return;
        }
        int chunks = Chunks(args.N);
        long rows = args.Rows;
        args.Histograms = counters.SubView(0, 2 * rows * Buckets);
        args.Counters = counters.SubView(2 * rows * Buckets, rows * CounterInts);
        args.State = scratch.SubView(0, rows * StateInts);
        args.Counts = scratch.SubView(rows * StateInts, rows * chunks);
        args.CandidateKeys = scratch.SubView(rows * (StateInts + chunks), rows * args.N).Cast<uint>();
        args.CandidatePositions = scratch.SubView(rows * (StateInts + chunks + args.N), rows * args.N);
        args.SharedCapacity = sharedCandidates;
        var grid = new KernelConfig(new Index2D(chunks, args.Rows), new Index2D(Threads, 1));
        if (args.K < args.N)
        {
            _histogram(grid, args, 0);
            _histogram(grid, args, 1);
            _gather(grid, args);
        }
        _write(grid, args);
    }

    private static int WindowStart(in Args a) => Math.Max(0, a.N - Math.Max(a.Window, 1));

    /// <summary>Keys still to pick after the forced positions.</summary>
    private static int Unforced(in Args a)
    {
        int sinks = Math.Min(a.Sinks, a.N), windowStart = WindowStart(a);
        return a.K - (sinks + (a.N - windowStart) - Math.Max(0, sinks - windowStart));
    }

    /// <summary>Where key i of a chunk lives in shared memory: one padding word per 32 keys, so the 32 lanes of a warp
    /// reading their runs (16 apart) hit 32 different banks.</summary>
    private static int Skewed(int i) => i + i / 32;

    private static float Score(ArrayView<float> row, int t, int end) => t < end ? row[t] : 0f;

    /// <summary>Scores of positions t + (j..j+7)·256 of the row starting at <paramref name="rowBase"/>, loaded together
    /// (through a view of the row, so each address is one 32-bit offset from its base).</summary>
    private static Vec8 Load8(in Args a, long rowBase, int t, int end, int j)
    {
        ArrayView<float> row = a.Scores.SubView(rowBase, a.N);
        var v = new Vec8();
        v.F0 = Score(row, t + j * Threads, end); v.F1 = Score(row, t + (j + 1) * Threads, end);
        v.F2 = Score(row, t + (j + 2) * Threads, end); v.F3 = Score(row, t + (j + 3) * Threads, end);
        v.F4 = Score(row, t + (j + 4) * Threads, end); v.F5 = Score(row, t + (j + 5) * Threads, end);
        v.F6 = Score(row, t + (j + 6) * Threads, end); v.F7 = Score(row, t + (j + 7) * Threads, end);
        return v;
    }

    private static void Store8(ArrayView<uint> keys, int i, int j, in Vec8 v)
    {
        keys[Skewed(i + j * Threads)] = KernelMath.OrderedKey(v.F0); keys[Skewed(i + (j + 1) * Threads)] = KernelMath.OrderedKey(v.F1);
        keys[Skewed(i + (j + 2) * Threads)] = KernelMath.OrderedKey(v.F2); keys[Skewed(i + (j + 3) * Threads)] = KernelMath.OrderedKey(v.F3);
        keys[Skewed(i + (j + 4) * Threads)] = KernelMath.OrderedKey(v.F4); keys[Skewed(i + (j + 5) * Threads)] = KernelMath.OrderedKey(v.F5);
        keys[Skewed(i + (j + 6) * Threads)] = KernelMath.OrderedKey(v.F6); keys[Skewed(i + (j + 7) * Threads)] = KernelMath.OrderedKey(v.F7);
    }

    /// <summary>Loads the chunk's keys into shared memory: coalesced, all 16 loads of a thread in flight at once.</summary>
    private static void StageKeys(in Args a, ArrayView<uint> keys, int row, int first, int end)
    {
        int i = Group.IdxX;
        long rowBase = (long)row * a.N;
        Vec8 low = Load8(a, rowBase, first + i, end, 0), high = Load8(a, rowBase, first + i, end, 8);
        Store8(keys, i, 0, low);
        Store8(keys, i, 8, high);
        Group.Barrier();
    }

    /// <summary>Level 0 counts the top 12 bits of every unforced key; level 1 counts bits 19..8 of the keys in the
    /// threshold's bucket. Keys are counted from registers: no staging, no per-position forced test in chunks without
    /// forced positions. The row's last group resolves the level's digit.</summary>
    private static void Histogram(Args a, int level)
    {
        ArrayView<U4> bins4 = SharedMemory.Allocate<U4>(Buckets / 4);
        ArrayView<int> bins = bins4.Cast<int>();
        ArrayView<ulong> scan = SharedMemory.Allocate<ulong>(32);
        ArrayView<int> ticket = SharedMemory.Allocate<int>(1);
        int chunk = Grid.IdxX, row = Grid.IdxY, tid = Group.IdxX;
        int sinks = Math.Min(a.Sinks, a.N), windowStart = WindowStart(a), first = chunk * ChunkSize, end = Math.Min(a.N, first + ChunkSize);
        long state = (long)row * StateInts;
        uint bucket = level == 0 ? 0u : (uint)a.State[state + DigitOffset];
        int remaining = level == 0 ? Unforced(a) : a.State[state + NeededOffset];
        var zero = new U4();
        bins4[tid] = zero; bins4[tid + Threads] = zero; bins4[tid + 2 * Threads] = zero; bins4[tid + 3 * Threads] = zero;
        Group.Barrier();
        if (remaining > 0)
        {
            long rowBase = (long)row * a.N;
            int t = first + tid;
            Vec8 low = Load8(a, rowBase, t, end, 0), high = Load8(a, rowBase, t, end, 8);
            var c = new Counter
            {
                Bins = bins, End = end, Sinks = sinks, WindowStart = windowStart,
                MatchMask = level == 0 ? 0u : 0xFFFF_FFFFu << BucketShift, MatchValue = bucket << BucketShift, Shift = level == 0 ? BucketShift : 8,
            };
            c.Count8(low, t);
            c.Count8(high, t + 8 * Threads);
        }
        Group.Barrier();
        ArrayView<int> histogram = a.Histograms.SubView(((long)level * a.Rows + row) * Buckets, Buckets);
        Flush4(histogram, 4 * tid, bins4[tid]); Flush4(histogram, 4 * (tid + Threads), bins4[tid + Threads]);
        Flush4(histogram, 4 * (tid + 2 * Threads), bins4[tid + 2 * Threads]); Flush4(histogram, 4 * (tid + 3 * Threads), bins4[tid + 3 * Threads]);
        if (!LastOfRow(a, row, level, ticket)) return;
        Resolve(a, histogram, bins, state + LevelInts * level, remaining, scan);
    }

    /// <summary>Adds four of the group's digit counts to the row's histogram, those that are not zero.</summary>
    private static void Flush4(ArrayView<int> histogram, int at, U4 v)
    {
        if (v.X != 0) Atomic.Add(ref histogram[at], (int)v.X);
        if (v.Y != 0) Atomic.Add(ref histogram[at + 1], (int)v.Y);
        if (v.Z != 0) Atomic.Add(ref histogram[at + 2], (int)v.Z);
        if (v.W != 0) Atomic.Add(ref histogram[at + 3], (int)v.W);
    }

    /// <summary>What <see cref="Histogram"/> counts for positions t, t + 256, …, t + 1792: the keys inside the row and
    /// not forced whose bits under <see cref="MatchMask"/> equal <see cref="MatchValue"/> (level 0: all; level 1: the
    /// threshold's bucket), by their 12 bits from <see cref="Shift"/>. Written without branches: a position's tests
    /// and its digit are a few selects before one predicated shared atomic.</summary>
    private struct Counter
    {
        public ArrayView<int> Bins;
        public int End, Sinks, WindowStart, Shift;
        public uint MatchMask, MatchValue;

        public readonly void Count8(in Vec8 v, int t)
        {
            Count(v.F0, t); Count(v.F1, t + Threads); Count(v.F2, t + 2 * Threads); Count(v.F3, t + 3 * Threads);
            Count(v.F4, t + 4 * Threads); Count(v.F5, t + 5 * Threads); Count(v.F6, t + 6 * Threads); Count(v.F7, t + 7 * Threads);
        }

        private readonly void Count(float score, int t)
        {
            uint key = KernelMath.OrderedKey(score);
            if (t < End & t >= Sinks & t < WindowStart & (key & MatchMask) == MatchValue)
                Atomic.Add(ref Bins[(int)((key >> Shift) & (Buckets - 1))], 1);
        }
    }

    /// <summary>Whether this group is the last of its row to take the ticket at <paramref name="ticketAt"/>
    /// (<see cref="LastGroup"/>).</summary>
    private static bool LastOfRow(in Args a, int row, int ticketAt, ArrayView<int> ticket) =>
        LastGroup.Arrive(a.Counters.SubView((long)row * CounterInts + ticketAt, 1), Grid.DimX, ticket);

    /// <summary>
    /// The row's last histogram group of a level: takes the row's digit counts (zeroing them for the next selection) and
    /// finds the digit holding the <paramref name="remaining"/>-th largest key and how many keys with it are needed, in
    /// the level's state at <paramref name="state"/>; with nothing to pick, digit 4096 (above every key) and none.
    /// </summary>
    private static void Resolve(in Args a, ArrayView<int> histogram, ArrayView<int> bins, long state, int remaining, ArrayView<ulong> scan)
    {
        int tid = Group.IdxX;
        if (remaining <= 0)
        {
            if (tid == 0) { a.State[state + DigitOffset] = Buckets; a.State[state + NeededOffset] = 0; }
            return;
        }
        ArrayView<U4> counts = histogram.Cast<U4>();
        U4 c0 = counts[tid], c1 = counts[tid + Threads], c2 = counts[tid + 2 * Threads], c3 = counts[tid + 3 * Threads];
        Put(bins, 4 * tid, c0); Put(bins, 4 * (tid + Threads), c1); Put(bins, 4 * (tid + 2 * Threads), c2); Put(bins, 4 * (tid + 3 * Threads), c3);
        var zero = new U4();
        counts[tid] = zero; counts[tid + Threads] = zero; counts[tid + 2 * Threads] = zero; counts[tid + 3 * Threads] = zero;
        Group.Barrier();
        if (FindDigit(bins, Buckets, remaining, scan, out int digit, out int r))
        {
            a.State[state + DigitOffset] = digit;
            a.State[state + NeededOffset] = r;
        }
    }

    /// <summary>
    /// Finds the digit that holds the <paramref name="r"/>-th largest of the values counted in
    /// <paramref name="bins"/> (<paramref name="size"/> digits) and that value's rank among the digit's values. Thread t
    /// owns the `per` digits below size − per·t, so thread order is descending digit order; only the thread owning the
    /// digit returns true. Every thread of the group must call.
    /// </summary>
    private static bool FindDigit(ArrayView<int> bins, int size, int r, ArrayView<ulong> scan, out int digit, out int rank)
    {
        int threads = Group.DimX, per = (size + threads - 1) / threads, top = size - per * Group.IdxX, sum = 0;
        for (int b = Math.Max(top - per, 0); b < top; b++) sum += bins[b];
        int before = (int)BlockScan.Exclusive(scan, (ulong)sum, out ulong _);
        digit = top - 1;
        rank = r - before;
        if (before >= r || r > before + sum) return false;
        while (bins[digit] < rank) rank -= bins[digit--];
        return true;
    }

    private static void Put(ArrayView<int> bins, int at, U4 v)
    {
        bins[at] = (int)v.X; bins[at + 1] = (int)v.Y; bins[at + 2] = (int)v.Z; bins[at + 3] = (int)v.W;
    }

    /// <summary>The threshold's first 24 bits (the two resolved digits); above every key when nothing is to be picked.</summary>
    private static uint Prefix(in Args a, long state) =>
        ((uint)a.State[state + DigitOffset] << 12) | (uint)a.State[state + LevelInts + DigitOffset];

    /// <summary>Each chunk counts the positions it selects outright (forced, or keys above the threshold's 24-bit
    /// prefix) and appends the keys with that prefix (the candidates) to the row's list; the row's last group refines.</summary>
    private static void Gather(Args a)
    {
        ArrayView<uint> listKeys = SharedMemory.Allocate<uint>(ChunkSize);
        ArrayView<int> listPositions = SharedMemory.Allocate<int>(ChunkSize);
        ArrayView<int> bins = SharedMemory.Allocate<int>(RefineBins);
        ArrayView<ulong> scan = SharedMemory.Allocate<ulong>(32);
        ArrayView<int> counters = SharedMemory.Allocate<int>(4);
        int chunk = Grid.IdxX, row = Grid.IdxY, tid = Group.IdxX;
        int sinks = Math.Min(a.Sinks, a.N), windowStart = WindowStart(a), first = chunk * ChunkSize, end = Math.Min(a.N, first + ChunkSize);
        var g = new Gatherer
        {
            Keys = listKeys, Positions = listPositions, Counters = counters, End = end,
            Sinks = sinks, WindowStart = windowStart, Prefix = Prefix(a, (long)row * StateInts),
        };
        if (tid == 0) { counters[0] = 0; counters[1] = 0; }
        Group.Barrier();
        long rowBase = (long)row * a.N;
        int t = first + tid;
        Vec8 low = Load8(a, rowBase, t, end, 0), high = Load8(a, rowBase, t, end, 8);
        int outright = g.Gather8(low, t) + g.Gather8(high, t + 8 * Threads);
        if (outright > 0) Atomic.Add(ref counters[1], outright);
        Group.Barrier();
        int matches = counters[0];
        if (tid == 0)
        {
            a.Counts[(long)row * Grid.DimX + chunk] = counters[1];
            counters[2] = matches > 0 ? Atomic.Add(ref a.Counters[(long)row * CounterInts + CandidatesAt], matches) : 0;
        }
        Group.Barrier();
        long at = rowBase + counters[2];
        for (int i = tid; i < matches; i += Threads)
        {
            a.CandidateKeys[at + i] = listKeys[i];
            a.CandidatePositions[at + i] = listPositions[i];
        }
        if (!LastOfRow(a, row, GatherTicketAt, counters.SubView(3, 1))) return;
        Refine(a, row, listKeys, listPositions, bins, scan, counters);
    }

    /// <summary>What <see cref="Gather"/> does for positions t, t + 256, …, t + 1792: returns how many it selects
    /// outright. A position's tests are selects; only a candidate's append branches.</summary>
    private struct Gatherer
    {
        public ArrayView<uint> Keys;
        public ArrayView<int> Positions, Counters;
        public int End, Sinks, WindowStart;
        public uint Prefix;

        public readonly int Gather8(in Vec8 v, int t) =>
            One(v.F0, t) + One(v.F1, t + Threads) + One(v.F2, t + 2 * Threads) + One(v.F3, t + 3 * Threads) +
            One(v.F4, t + 4 * Threads) + One(v.F5, t + 5 * Threads) + One(v.F6, t + 6 * Threads) + One(v.F7, t + 7 * Threads);

        private readonly int One(float score, int t)
        {
            uint key = KernelMath.OrderedKey(score), top = key >> 8;
            bool inside = t < End, forced = t < Sinks | t >= WindowStart;
            if (inside & !forced & top == Prefix)
            {
                int at = Atomic.Add(ref Counters[0], 1);
                Keys[at] = key;
                Positions[at] = t;
            }
            return inside & (forced | top > Prefix) ? 1 : 0;
        }
    }

    /// <summary>
    /// The row's last gathering group: finds the threshold key among the row's candidates (in shared memory when they
    /// fit, else read from global memory in every pass), the last position taken among the keys equal to it, and each
    /// chunk's output offset. Resets the candidate count for the next selection.
    /// </summary>
    private static void Refine(in Args a, int row, ArrayView<uint> listKeys, ArrayView<int> listPositions, ArrayView<int> bins, ArrayView<ulong> scan, ArrayView<int> found)
    {
        int tid = Group.IdxX, chunks = Grid.DimX;
        long state = (long)row * StateInts, list = (long)row * a.N, counts = (long)row * chunks, candidates = (long)row * CounterInts + CandidatesAt;
        if (tid == 0)
        {
            found[0] = a.Counters[candidates];
            a.Counters[candidates] = 0;
        }
        Group.Barrier();
        int count = found[0], needed = a.State[state + LevelInts + NeededOffset];
        ArrayView<uint> keys = a.CandidateKeys.SubView(list, a.N);
        ArrayView<int> positions = a.CandidatePositions.SubView(list, a.N);
        if (count <= a.SharedCapacity)
        {
            for (int i = 0; i < count; i += 4 * Threads) CopyCandidates(keys, positions, listKeys, listPositions, i, count);
            keys = listKeys;
            positions = listPositions;
        }
        Group.Barrier();

        // The threshold key: the needed-th largest candidate (all share the 24-bit prefix), by its last 8 bits.
        uint threshold = 0xFFFF_FFFFu;
        int lastEqual = -1;
        if (needed > 0)
        {
            uint p = Prefix(a, state) << 8, m = 0xFFFF_FF00u;
            int r = needed;
            int equal = SelectDigit(keys, positions, count, false, 0, 0, 8, ref p, ref m, ref r, bins, scan, found);
            threshold = p;
            lastEqual = int.MaxValue;
            if (r < equal)
            {
                // Only the r lowest positions among the keys equal to T are taken: the r-th largest of ~position.
                uint q = 0, mq = 0;
                SelectDigit(keys, positions, count, true, threshold, 21, 11, ref q, ref mq, ref r, bins, scan, found);
                SelectDigit(keys, positions, count, true, threshold, 10, 11, ref q, ref mq, ref r, bins, scan, found);
                SelectDigit(keys, positions, count, true, threshold, 0, 10, ref q, ref mq, ref r, bins, scan, found);
                lastEqual = (int)~q;
            }
        }

        // Each chunk's offset: the positions selected before it.
        for (int c = tid; c < chunks; c += Threads) bins[c] = a.Counts[counts + c];
        Group.Barrier();
        for (int i = tid; i < count; i += Threads)
        {
            uint key = keys[i];
            int t = positions[i];
            if (key > threshold || (key == threshold && t <= lastEqual)) Atomic.Add(ref bins[t / ChunkSize], 1);
        }
        Group.Barrier();
        long running = 0;
        for (int c0 = 0; c0 < chunks; c0 += Threads)
        {
            int c = c0 + tid;
            ulong before = BlockScan.Exclusive(scan, c < chunks ? (ulong)bins[c] : 0ul, out ulong total);
            if (c < chunks) a.Counts[counts + c] = (int)(running + (long)before);
            running += (long)total;
        }
        if (tid == 0)
        {
            a.State[state + ThresholdAt] = (int)threshold;
            a.State[state + LastEqualAt] = lastEqual;
        }
    }

    /// <summary>Copies candidates from..from + 4·256 into shared memory, a thread's four loads in flight at once.</summary>
    private static void CopyCandidates(ArrayView<uint> keys, ArrayView<int> positions, ArrayView<uint> sharedKeys, ArrayView<int> sharedPositions, int from, int count)
    {
        int i0 = from + Group.IdxX, i1 = i0 + Threads, i2 = i1 + Threads, i3 = i2 + Threads;
        uint k0 = i0 < count ? keys[i0] : 0, k1 = i1 < count ? keys[i1] : 0, k2 = i2 < count ? keys[i2] : 0, k3 = i3 < count ? keys[i3] : 0;
        int p0 = i0 < count ? positions[i0] : 0, p1 = i1 < count ? positions[i1] : 0, p2 = i2 < count ? positions[i2] : 0, p3 = i3 < count ? positions[i3] : 0;
        if (i0 < count) { sharedKeys[i0] = k0; sharedPositions[i0] = p0; }
        if (i1 < count) { sharedKeys[i1] = k1; sharedPositions[i1] = p1; }
        if (i2 < count) { sharedKeys[i2] = k2; sharedPositions[i2] = p2; }
        if (i3 < count) { sharedKeys[i3] = k3; sharedPositions[i3] = p3; }
    }

    /// <summary>
    /// One radix-select pass over the candidates: among the values (the key, or ~position of keys equal to
    /// <paramref name="equalTo"/> when <paramref name="byPosition"/>) that match <paramref name="prefix"/> under
    /// <paramref name="mask"/>, finds the digit in bits [shift, shift + bits) of the r-th largest and adds it to the
    /// prefix; r becomes its rank among the values with that digit. Returns how many values have that digit.
    /// </summary>
    private static int SelectDigit(ArrayView<uint> keys, ArrayView<int> positions, int count, bool byPosition, uint equalTo, int shift, int bits,
        ref uint prefix, ref uint mask, ref int r, ArrayView<int> bins, ArrayView<ulong> scan, ArrayView<int> found)
    {
        int tid = Group.IdxX, threads = Group.DimX, size = 1 << bits;
        uint digitMask = (uint)size - 1;
        for (int b = tid; b < size; b += threads) bins[b] = 0;
        Group.Barrier();
        for (int i = tid; i < count; i += threads)
        {
            uint key = keys[i], value = byPosition ? ~(uint)positions[i] : key;
            if ((!byPosition || key == equalTo) && (value & mask) == prefix) Atomic.Add(ref bins[(int)((value >> shift) & digitMask)], 1);
        }
        Group.Barrier();
        if (FindDigit(bins, size, r, scan, out int digit, out int rank))
        {
            found[0] = digit;
            found[1] = rank;
            found[2] = bins[digit];
        }
        Group.Barrier();
        prefix |= (uint)found[0] << shift;
        mask |= digitMask << shift;
        r = found[1];
        int withDigit = found[2];
        Group.Barrier();
        return withDigit;
    }

    private static void Write(Args a)
    {
        ArrayView<uint> keys = SharedMemory.Allocate<uint>(SkewedChunk);
        ArrayView<ulong> scan = SharedMemory.Allocate<ulong>(32);
        int chunk = Grid.IdxX, row = Grid.IdxY, tid = Group.IdxX, n = a.N;
        long outBase = (long)row * a.K;
        int first = chunk * ChunkSize, end = Math.Min(n, first + ChunkSize);
        int runStart = first + tid * PerThread, runEnd = Math.Min(runStart + PerThread, end);
        if (a.K >= n)
        {
            for (int t = runStart; t < runEnd; t++) a.Output[outBase + t] = t;
            return;
        }
        long state = (long)row * StateInts;
        var rule = new Selection
        {
            Keys = keys, First = first, End = end, Threshold = (uint)a.State[state + ThresholdAt], LastEqual = a.State[state + LastEqualAt],
            Sinks = Math.Min(a.Sinks, n), WindowStart = WindowStart(a),
        };
        int offset = a.Counts[(long)row * Grid.DimX + chunk];
        StageKeys(a, keys, row, first, end);
        uint taken = rule.Run16(runStart);
        int slot = offset + (int)BlockScan.Exclusive(scan, (ulong)BitOperations.PopCount(taken), out ulong _);
        // Bit 15 − j stands for position runStart + j, so the leading zeros name the lowest selected position left.
        for (; taken != 0; taken &= ~(0x8000u >> (BitOperations.LeadingZeroCount(taken) - 16)))
            a.Output[outBase + slot++] = runStart + BitOperations.LeadingZeroCount(taken) - 16;
    }

    /// <summary>Which positions of a thread's run are selected, once the threshold is known: a position's tests are
    /// selects, not branches (forced positions, keys above the threshold, keys equal to it up to the last position
    /// taken, inside the row).</summary>
    private struct Selection
    {
        public ArrayView<uint> Keys;
        public uint Threshold;
        public int First, End, LastEqual, Sinks, WindowStart;

        /// <summary>Bit 15 − j: whether position <paramref name="t"/> + j is selected, for j = 0..15.</summary>
        public readonly uint Run16(int t) =>
            Bit(t, 0) | Bit(t, 1) | Bit(t, 2) | Bit(t, 3) | Bit(t, 4) | Bit(t, 5) | Bit(t, 6) | Bit(t, 7) |
            Bit(t, 8) | Bit(t, 9) | Bit(t, 10) | Bit(t, 11) | Bit(t, 12) | Bit(t, 13) | Bit(t, 14) | Bit(t, 15);

        private readonly uint Bit(int run, int j)
        {
            int t = run + j;
            uint key = Keys[Skewed(t - First)];
            bool taken = t < End & (key > Threshold | (key == Threshold & t <= LastEqual) | t < Sinks | t >= WindowStart);
            return taken ? 0x8000u >> j : 0u;
        }
    }
}
