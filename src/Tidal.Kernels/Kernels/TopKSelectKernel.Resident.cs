using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Top-k selection in one launch, when every group of the grid can be resident at once: each group stages its chunk of
/// a row (up to <see cref="ResidentChunk"/> positions) as order-preserving keys in shared memory, once, and the row's
/// groups meet at barriers in global memory instead of at launch boundaries:
/// <list type="number">
/// <item>Three radix levels (bits 31..21, 20..10, 9..0 of the key): each group counts the digits of its unforced keys
/// that share the threshold's prefix so far (the first level from registers while staging; after it each thread sorts
/// its run of 32 positions once into two bit masks, selected outright and candidates, so the later levels visit only
/// the candidates), adds its counts to the row's histogram of the level, and waits for the row's other groups; then every group reads the whole histogram and finds the same digit (and how many keys with it
/// are still needed), so no group has to tell the others. After the third level the threshold key T is exact, and so is
/// how many keys equal to T are taken (ties go to the lowest positions).</item>
/// <item>Each group counts what it selects outright (forced positions, keys above T) and its keys equal to T, publishes
/// both and waits once more; its output offset and its share of the ties follow from the groups before it.</item>
/// <item>Each thread writes the selected positions of its run, ascending.</item>
/// </list>
/// The four launches of <see cref="TopKSelectKernel"/> reread the scores and pay a launch's chain of dependent steps
/// each time; here the scores are read once. Spinning at a barrier is only safe if all the row's groups run at the same
/// time, so the launch is taken only when the occupancy the driver reports holds the whole grid (and on the CPU
/// accelerator, one group per multiprocessor); otherwise the four-launch path serves. The barrier counter and the
/// histograms are zeroed by the row's last group to leave, so they are zero again after each selection.
/// </summary>
public sealed partial class TopKSelectKernel
{
    /// <summary>Threads per resident group: the four-launch path's, whose staging helpers stride by it.</summary>
    private const int ResidentThreads = Threads;

    /// <summary>Consecutive positions per thread: a run's selection is one 32-bit mask.</summary>
    private const int Run = 32;

    /// <summary>Most positions a resident group holds in shared memory.</summary>
    public const int ResidentChunk = ResidentThreads * Run;

    /// <summary>Bins of a resident radix level (11-bit digits; the last level uses 1024 of them).</summary>
    private const int ResidentBins = 2048;
    private const int ResidentLevels = 3;

    /// <summary>The resident launch's kernel and how many of its groups fit on the device at once.</summary>
    private readonly Action<KernelConfig, Args> _resident;
    private readonly int _residentSlots;

    private static int ResidentSlots(Accelerator accelerator, Action<KernelConfig, Args> kernel) =>
        accelerator.AcceleratorType == AcceleratorType.CPU
            // The CPU accelerator runs the groups of a multiprocessor's share of the grid one after another.
            ? accelerator.NumMultiprocessors
            : accelerator.NumMultiprocessors * accelerator.EstimateMaxActiveGroupsPerMultiprocessor(kernel.GetKernel(), ResidentThreads, 0);

    /// <summary>Groups per row of the resident launch for rows of <paramref name="n"/> positions, and whether the
    /// device holds the grid of <paramref name="rows"/> rows at once (and one group can sum the row's groups' counts).
    /// Measured on an H200: 16 groups per row of 128K took no longer for 32 rows than 64 groups of 2048 positions per row
    /// for 8 rows (each row's groups meet four times, so fewer per row is cheaper), hence the whole chunk per group.</summary>
    public bool TryResidentShape(int rows, int n, out int groupsPerRow)
    {
        groupsPerRow = (n + ResidentChunk - 1) / ResidentChunk;
        return groupsPerRow <= ResidentThreads && (long)rows * groupsPerRow <= _residentSlots;
    }

    private void LaunchResident(Args args, ArrayView<int> counters, ArrayView<int> scratch, int groupsPerRow)
    {
        long rows = args.Rows;
        args.Histograms = counters.SubView(0, rows * ResidentLevels * ResidentBins);
        args.Counters = counters.SubView(rows * ResidentLevels * ResidentBins, rows);
        args.Counts = scratch.SubView(0, rows * groupsPerRow * 2);
        _resident(new KernelConfig(new Index2D(groupsPerRow, args.Rows), new Index2D(ResidentThreads, 1)), args);
    }

    private static void Resident(Args a)
    {
        ArrayView<uint> keys = SharedMemory.Allocate<uint>(ResidentChunk + ResidentChunk / 32);
        ArrayView<U4> bins4 = SharedMemory.Allocate<U4>(ResidentBins / 4);
        ArrayView<int> bins = bins4.Cast<int>();
        ArrayView<ulong> scan = SharedMemory.Allocate<ulong>(32);
        ArrayView<int> found = SharedMemory.Allocate<int>(2);
        int chunk = Grid.IdxX, row = Grid.IdxY, tid = Group.IdxX;
        int first = chunk * ResidentChunk, end = Math.Min(a.N, first + ResidentChunk), sinks = Math.Min(a.Sinks, a.N), windowStart = WindowStart(a);
        var r = new ResidentRow
        {
            Counter = a.Counters.SubView(row, 1), Histograms = a.Histograms.SubView((long)row * ResidentLevels * ResidentBins, ResidentLevels * ResidentBins),
            Bins4 = bins4, Scan = scan, Found = found, Groups = Grid.DimX, Needed = Unforced(a),
        };

        // The chunk's keys, position first + l at Skewed(l), all 16 loads of a half in flight at once; the top digits
        // of the unforced ones are counted from registers.
        bins4[tid] = new U4(); bins4[tid + ResidentThreads] = new U4();
        Group.Barrier();
        var top = new Counter { Bins = bins, End = end, Sinks = sinks, WindowStart = windowStart, Shift = 21 };
        long rowBase = (long)row * a.N;
        int t0 = first + tid;
        Vec8 v0 = Load8(a, rowBase, t0, end, 0), v1 = Load8(a, rowBase, t0, end, 8);
        Store8(keys, tid, 0, v0); Store8(keys, tid, 8, v1);
        top.Count8(v0, t0); top.Count8(v1, t0 + 8 * ResidentThreads);
        // A barrier keeps ptxas from hoisting the second half's loads above the first half's stores and counts, which
        // would need more registers than the cap that lets four groups share an SM.
        Group.Barrier();
        v0 = Load8(a, rowBase, t0, end, 16); v1 = Load8(a, rowBase, t0, end, 24);
        Store8(keys, tid, 16, v0); Store8(keys, tid, 24, v1);
        top.Count8(v0, t0 + 16 * ResidentThreads); top.Count8(v1, t0 + 24 * ResidentThreads);
        Group.Barrier();

        // Thread tid's run, positions runStart + j for j < 32, as bits j of two masks: what it selects outright (forced,
        // or above the threshold key T's digits so far) and the candidates (unforced keys with T's digits so far). With
        // nothing to pick, the top digit is above every key's.
        bool pick = r.Needed > 0;
        int digit = pick ? r.Digit(0, ResidentBins) : ResidentBins, runStart = first + tid * Run;
        uint outright = 0, candidates = 0;
        for (int j = 0; j < Run; j++)
        {
            int t = runStart + j;
            int keyTop = (int)(keys[Skewed(t - first)] >> 21);
            bool inside = t < end, forced = t < sinks | t >= windowStart;
            outright |= inside & (forced | keyTop > digit) ? 1u << j : 0u;
            candidates |= inside & !forced & keyTop == digit ? 1u << j : 0u;
        }

        // T's other digits, counted among the candidates only (in the bins Digit left zero): bits 20..10, then 9..0.
        if (pick)
        {
            for (int level = 1; level < ResidentLevels; level++)
            {
                int shift = level == 1 ? 10 : 0, size = level == 1 ? ResidentBins : ResidentBins / 2;
                for (uint m = candidates; m != 0; m &= m - 1)
                {
                    int l = runStart - first + BitOperations.TrailingZeroCount(m);
                    Atomic.Add(ref bins[(int)((keys[Skewed(l)] >> shift) & (uint)(size - 1))], 1);
                }
                Group.Barrier();
                digit = r.Digit(level, size);
                for (uint m = candidates; m != 0; m &= m - 1)
                {
                    int j = BitOperations.TrailingZeroCount(m);
                    int keyDigit = (int)((keys[Skewed(runStart - first + j)] >> shift) & (uint)(size - 1));
                    outright |= keyDigit > digit ? 1u << j : 0u;
                    candidates &= keyDigit == digit ? 0xFFFF_FFFFu : ~(1u << j);
                }
            }
        }

        // The candidates left equal T; r.Needed of the row's are taken, the lowest positions first.
        uint equal = candidates;
        int needed = r.Needed;
        ulong mine = ((ulong)BitOperations.PopCount(outright) << 32) | (uint)BitOperations.PopCount(equal);
        ulong before = BlockScan.Exclusive(scan, mine, out ulong chunkTotal);
        ArrayView<int> published = a.Counts.SubView((long)row * Grid.DimX * 2, Grid.DimX * 2);
        if (tid == 0) { published[2 * chunk] = (int)(chunkTotal >> 32); published[2 * chunk + 1] = (int)(uint)chunkTotal; }
        r.Arrive();

        // What the chunks before this one select outright and how many keys equal to T they hold.
        ulong earlier = tid < chunk ? ((ulong)published[2 * tid] << 32) | (uint)published[2 * tid + 1] : 0ul;
        BlockScan.Exclusive(scan, earlier, out ulong beforeChunk);
        int equalBefore = (int)(uint)beforeChunk + (int)(uint)before;
        int slot = (int)(beforeChunk >> 32) + (int)(before >> 32) + Math.Min(equalBefore, needed);
        for (int take = needed - equalBefore; take > 0 && equal != 0; take--)
        {
            outright |= equal & (0u - equal);
            equal &= equal - 1;
        }
        long outBase = (long)row * a.K;
        for (; outright != 0; outright &= outright - 1)
            a.Output[outBase + slot++] = runStart + BitOperations.TrailingZeroCount(outright);
        r.Leave();
    }

    /// <summary>A row's groups meeting in global memory: one counter per row, which every group adds 1 to at each
    /// barrier (so barrier i is passed when it reaches i·groups) and once more when it leaves; and the row's histograms
    /// of T's digits, one per level.</summary>
    private struct ResidentRow
    {
        public ArrayView<int> Counter, Histograms, Found;
        public ArrayView<U4> Bins4;
        public ArrayView<ulong> Scan;
        public int Groups, Passed, Needed;

        /// <summary>Adds the group's counts of a level's digits (in <see cref="Bins4"/>) to the row's, waits for the
        /// row's other groups, and finds in the row's counts the digit of the <see cref="Needed"/>-th largest key;
        /// <see cref="Needed"/> becomes its rank among the keys with that digit. Every group finds the same. Leaves the
        /// bins zero for the next level's counts.</summary>
        public int Digit(int level, int size)
        {
            int tid = Group.IdxX, threads = Group.DimX;
            ArrayView<int> histogram = Histograms.SubView(level * ResidentBins, ResidentBins);
            Flush4(histogram, 4 * tid, Bins4[tid]); Flush4(histogram, 4 * (tid + threads), Bins4[tid + threads]);
            Arrive();
            ArrayView<U4> counts = histogram.Cast<U4>();
            U4 c0 = counts[tid], c1 = counts[tid + threads];
            ArrayView<int> bins = Bins4.Cast<int>();
            Put(bins, 4 * tid, c0); Put(bins, 4 * (tid + threads), c1);
            Group.Barrier();
            if (FindDigit(bins, size, Needed, Scan, out int digit, out int rank)) { Found[0] = digit; Found[1] = rank; }
            Group.Barrier();
            digit = Found[0];
            Needed = Found[1];
            Bins4[tid] = new U4(); Bins4[tid + threads] = new U4();
            Group.Barrier(); // Found is rewritten next, and the bins count the next level
            return digit;
        }

        /// <summary>Waits until every group of the row has arrived; the group's global writes before it are seen by the
        /// others after it.</summary>
        public void Arrive()
        {
            Passed++;
            Group.Barrier();
            if (Group.IdxX == 0)
            {
                // One fence serves the group: it is cumulative over the writes the group barrier ordered before it.
                MemoryFence.DeviceLevel();
                Atomic.Add(ref Counter[0], 1);
                while (Atomic.Add(ref Counter[0], 0) < Passed * Groups) { }
                MemoryFence.DeviceLevel();
            }
            Group.Barrier();
        }

        /// <summary>The row's last group to leave zeroes the counter and the histograms for the next selection: every
        /// group has read them by then, as it left after its last barrier.</summary>
        public readonly void Leave()
        {
            Group.Barrier();
            if (Group.IdxX == 0)
            {
                MemoryFence.DeviceLevel();
                Found[0] = Atomic.Add(ref Counter[0], 1) == (Passed + 1) * Groups - 1 ? 1 : 0;
            }
            Group.Barrier();
            if (Found[0] == 0) return;
            ArrayView<U4> h = Histograms.Cast<U4>();
            for (int i = Group.IdxX; i < h.IntLength; i += Group.DimX) h[i] = new U4();
            if (Group.IdxX == 0) Counter[0] = 0;
        }
    }
}
