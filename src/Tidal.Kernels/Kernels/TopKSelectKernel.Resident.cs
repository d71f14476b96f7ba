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
/// that share the threshold's prefix so far, adds its counts to the row's histogram of the level, and waits for the
/// row's other groups; then every group reads the whole histogram and finds the same digit (and how many keys with it
/// are still needed), so no group has to tell the others. After the third level the threshold key T is exact, and so is
/// how many keys equal to T are taken (ties go to the lowest positions).</item>
/// <item>Each group counts what it selects outright (forced positions, keys above T) and its keys equal to T, publishes
/// both and waits once more; its output offset and its share of the ties follow from the groups before it.</item>
/// <item>Each thread writes the selected positions of its run of consecutive positions, ascending.</item>
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

    /// <summary>Longest run of positions per thread: a run's selection is one 32-bit mask.</summary>
    private const int MaxRun = 32;

    /// <summary>Most positions a resident group holds in shared memory.</summary>
    public const int ResidentChunk = ResidentThreads * MaxRun;

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

    /// <summary>
    /// The resident launch's shape for <paramref name="rows"/> rows of <paramref name="n"/> positions: the shortest run
    /// per thread (8, 16 or 32 positions, so that more groups share the reading) whose grid is resident at once and whose
    /// groups per row one group can sum; false when none is.
    /// </summary>
    public bool TryResidentShape(int rows, int n, out int run, out int groupsPerRow)
    {
        for (run = 8; run <= MaxRun; run *= 2)
        {
            groupsPerRow = (n + run * ResidentThreads - 1) / (run * ResidentThreads);
            if (groupsPerRow <= ResidentThreads && (long)rows * groupsPerRow <= _residentSlots) return true;
        }
        groupsPerRow = 0;
        return false;
    }

    private void LaunchResident(Args args, ArrayView<int> counters, ArrayView<int> scratch, int run, int groupsPerRow)
    {
        long rows = args.Rows;
        args.Histograms = counters.SubView(0, rows * ResidentLevels * ResidentBins);
        args.Counters = counters.SubView(rows * ResidentLevels * ResidentBins, rows);
        args.Counts = scratch.SubView(0, rows * groupsPerRow * 2);
        args.Run = run;
        _resident(new KernelConfig(new Index2D(groupsPerRow, args.Rows), new Index2D(ResidentThreads, 1)), args);
    }

    private static void Resident(Args a)
    {
        ArrayView<uint> keys = SharedMemory.Allocate<uint>(ResidentChunk + ResidentChunk / 32);
        ArrayView<U4> bins4 = SharedMemory.Allocate<U4>(ResidentBins / 4);
        ArrayView<int> bins = bins4.Cast<int>();
        ArrayView<ulong> scan = SharedMemory.Allocate<ulong>(32);
        ArrayView<int> found = SharedMemory.Allocate<int>(2);
        int chunk = Grid.IdxX, row = Grid.IdxY, tid = Group.IdxX, run = a.Run, chunkSize = run * ResidentThreads;
        int first = chunk * chunkSize, end = Math.Min(a.N, first + chunkSize);
        var r = new ResidentRow { Counter = a.Counters.SubView(row, 1), Groups = Grid.DimX };

        // The chunk's keys, position first + l at Skewed(l); all 16 loads of a half in flight at once.
        long rowBase = (long)row * a.N;
        Vec8 v0 = Load8(a, rowBase, first + tid, end, 0), v1 = Load8(a, rowBase, first + tid, end, 8);
        Store8(keys, tid, 0, v0); Store8(keys, tid, 8, v1);
        if (run > 16)
        {
            v0 = Load8(a, rowBase, first + tid, end, 16); v1 = Load8(a, rowBase, first + tid, end, 24);
            Store8(keys, tid, 16, v0); Store8(keys, tid, 24, v1);
        }
        Group.Barrier();

        // The threshold key T, digit by digit; with nothing left to pick, above every key.
        int sinks = Math.Min(a.Sinks, a.N), windowStart = WindowStart(a), needed = Unforced(a);
        uint prefix = 0, mask = 0;
        if (needed > 0)
        {
            for (int level = 0; level < ResidentLevels; level++)
            {
                int shift = level == 0 ? 21 : level == 1 ? 10 : 0, size = level == 2 ? ResidentBins / 2 : ResidentBins;
                var zero = new U4();
                bins4[tid] = zero; bins4[tid + ResidentThreads] = zero;
                Group.Barrier();
                for (int j = 0; j < run; j++)
                {
                    int l = tid + j * ResidentThreads, t = first + l;
                    uint key = keys[Skewed(l)];
                    if (t < end & t >= sinks & t < windowStart & (key & mask) == prefix)
                        Atomic.Add(ref bins[(int)((key >> shift) & (uint)(size - 1))], 1);
                }
                Group.Barrier();
                ArrayView<int> histogram = a.Histograms.SubView(((long)row * ResidentLevels + level) * ResidentBins, ResidentBins);
                Flush4(histogram, 4 * tid, bins4[tid]); Flush4(histogram, 4 * (tid + ResidentThreads), bins4[tid + ResidentThreads]);
                r.Arrive();
                ArrayView<U4> counts = histogram.Cast<U4>();
                U4 c0 = counts[tid], c1 = counts[tid + ResidentThreads];
                Put(bins, 4 * tid, c0); Put(bins, 4 * (tid + ResidentThreads), c1);
                Group.Barrier();
                if (FindDigit(bins, size, needed, scan, out int digit, out int rank)) { found[0] = digit; found[1] = rank; }
                Group.Barrier();
                prefix |= (uint)found[0] << shift;
                mask |= (uint)(size - 1) << shift;
                needed = found[1];
                Group.Barrier(); // found is rewritten by the next level
            }
        }
        else prefix = 0xFFFF_FFFFu;

        // Thread tid's run: positions runStart + j for j < run, as bit j of two masks (outright, equal to T).
        int runStart = first + tid * run;
        uint outright = 0, equal = 0;
        for (int j = 0; j < run; j++)
        {
            int t = runStart + j;
            uint key = keys[Skewed(t - first)];
            bool inside = t < end, forced = t < sinks | t >= windowStart;
            outright |= inside & (forced | key > prefix) ? 1u << j : 0u;
            equal |= inside & !forced & key == prefix & needed > 0 ? 1u << j : 0u;
        }
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
        r.Leave(a.Histograms.SubView((long)row * ResidentLevels * ResidentBins, ResidentLevels * ResidentBins), found);
    }

    /// <summary>A row's groups meeting in global memory: one counter per row, which every group adds 1 to at each
    /// barrier (so barrier i is passed when it reaches i·groups) and once more when it leaves.</summary>
    private struct ResidentRow
    {
        public ArrayView<int> Counter;
        public int Groups, Passed;

        /// <summary>Waits until every group of the row has arrived; the group's global writes before it are seen by the
        /// others after it.</summary>
        public void Arrive()
        {
            Passed++;
            MemoryFence.DeviceLevel();
            Group.Barrier();
            if (Group.IdxX == 0)
            {
                Atomic.Add(ref Counter[0], 1);
                while (Atomic.Add(ref Counter[0], 0) < Passed * Groups) { }
                MemoryFence.DeviceLevel();
            }
            Group.Barrier();
        }

        /// <summary>The row's last group to leave zeroes the counter and <paramref name="histograms"/> for the next
        /// selection: every group has read them by then, as it left after its last barrier. <paramref name="last"/> is
        /// one shared int.</summary>
        public readonly void Leave(ArrayView<int> histograms, ArrayView<int> last)
        {
            MemoryFence.DeviceLevel();
            Group.Barrier();
            if (Group.IdxX == 0) last[0] = Atomic.Add(ref Counter[0], 1) == (Passed + 1) * Groups - 1 ? 1 : 0;
            Group.Barrier();
            if (last[0] == 0) return;
            ArrayView<U4> h = histograms.Cast<U4>();
            for (int i = Group.IdxX; i < h.IntLength; i += Group.DimX) h[i] = new U4();
            if (Group.IdxX == 0) Counter[0] = 0;
        }
    }
}
