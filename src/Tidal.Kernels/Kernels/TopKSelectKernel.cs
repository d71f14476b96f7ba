using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Top-k selection, one group of 256 threads per row of scores: radix select on order-preserving keys (4 passes of
/// 8-bit histograms in shared memory, integer atomics, so counts are exact), then an ordered compaction (block scans)
/// that writes forced positions, keys above the threshold, and the lowest-positioned keys equal to it, ascending.
/// Reference: Tidal.Core.Reference.TopK.Select, identical sets.
/// </summary>
public sealed class TopKSelectKernel
{
    private const int Threads = 256;
    private const int PerThread = 16;

    /// <summary>Arguments of one launch.</summary>
    public struct Args
    {
        /// <summary>Scores [rows, N].</summary>
        public ArrayView<float> Scores;
        /// <summary>Selected positions [rows, K], ascending.</summary>
        public ArrayView<int> Output;
        /// <summary>Positions per row (the current token is N − 1).</summary>
        public int N;
        /// <summary>Selected per row: min(budget, N).</summary>
        public int K;
        /// <summary>Forced leading positions.</summary>
        public int Sinks;
        /// <summary>Forced trailing positions (at least the current token).</summary>
        public int Window;
    }

    private readonly Action<KernelConfig, Args> _kernel;

    /// <summary>Compiles the kernel.</summary>
    public TopKSelectKernel(Accelerator accelerator) => _kernel = accelerator.LoadStreamKernel<Args>(Run);

    /// <summary>Selects for <paramref name="rows"/> rows.</summary>
    public void Launch(Args args, int rows) => _kernel(new KernelConfig(rows, Threads), args);

    private static bool Forced(int t, int sinks, int windowStart) => t < sinks || t >= windowStart;

    /// <summary>Exclusive scan of one flag per thread over the group; returns (exclusive prefix, group total).</summary>
    private static int Scan(ArrayView<int> scratch, int flag, out int total)
    {
        int tid = Group.IdxX;
        scratch[tid] = flag;
        Group.Barrier();
        for (int offset = 1; offset < Threads; offset *= 2)
        {
            int add = tid >= offset ? scratch[tid - offset] : 0;
            Group.Barrier();
            scratch[tid] += add;
            Group.Barrier();
        }
        total = scratch[Threads - 1];
        int inclusive = scratch[tid];
        Group.Barrier();
        return inclusive - flag;
    }

    private static void Run(Args a)
    {
        ArrayView<int> histogram = SharedMemory.Allocate<int>(256);
        ArrayView<int> scan = SharedMemory.Allocate<int>(Threads);
        ArrayView<uint> state = SharedMemory.Allocate<uint>(3); // prefix, mask, remaining
        int row = Grid.IdxX, tid = Group.IdxX, n = a.N;
        long inBase = (long)row * n, outBase = (long)row * a.K;
        if (a.K >= n)
        {
            for (int t = tid; t < n; t += Threads) a.Output[outBase + t] = t;
            return;
        }
        int window = Math.Max(a.Window, 1), sinks = Math.Min(a.Sinks, n);
        int windowStart = Math.Max(0, n - window);
        int forcedCount = sinks + (n - windowStart) - Math.Max(0, sinks - windowStart);
        if (tid == 0)
        {
            state[0] = 0xFFFF_FFFFu; // no candidate key exceeds or equals this when nothing is to be selected
            state[1] = 0;
            state[2] = (uint)(a.K - forcedCount);
        }
        Group.Barrier();
        if (a.K - forcedCount > 0)
        {
            if (tid == 0) state[0] = 0;
            for (int shift = 24; shift >= 0; shift -= 8)
            {
                histogram[tid] = 0;
                Group.Barrier();
                uint prefix = state[0], mask = state[1];
                for (int t = tid; t < n; t += Threads)
                {
                    if (Forced(t, sinks, windowStart)) continue;
                    uint key = KernelMath.OrderedKey(a.Scores[inBase + t]);
                    if ((key & mask) == prefix) Atomic.Add(ref histogram[(int)((key >> shift) & 0xFF)], 1);
                }
                Group.Barrier();
                if (tid == 0)
                {
                    int remaining = (int)state[2], digit = 255;
                    for (; digit > 0 && histogram[digit] < remaining; digit--) remaining -= histogram[digit];
                    state[0] = prefix | ((uint)digit << shift);
                    state[1] = mask | (0xFFu << shift);
                    state[2] = (uint)remaining;
                }
                Group.Barrier();
            }
        }
        uint threshold = state[0];
        int needEqual = (int)state[2];
        // Ordered compaction in tiles of Threads·PerThread positions; thread t owns a run of PerThread consecutive
        // positions, so one pair of block scans serves PerThread positions per thread.
        int equalBefore = 0, selectedBefore = 0;
        for (int tile = 0; tile < n; tile += Threads * PerThread)
        {
            int runStart = tile + tid * PerThread, runEnd = Math.Min(runStart + PerThread, n);
            int equals = 0;
            for (int t = runStart; t < runEnd; t++)
                if (!Forced(t, sinks, windowStart) && KernelMath.OrderedKey(a.Scores[inBase + t]) == threshold) equals++;
            int equalRank = Scan(scan, equals, out int equalTotal) + equalBefore;
            int selectedHere = 0;
            for (int t = runStart, rank = equalRank; t < runEnd; t++)
            {
                if (Forced(t, sinks, windowStart)) { selectedHere++; continue; }
                uint key = KernelMath.OrderedKey(a.Scores[inBase + t]);
                if (key > threshold) selectedHere++;
                else if (key == threshold) { if (rank < needEqual) selectedHere++; rank++; }
            }
            int slot = Scan(scan, selectedHere, out int selectedTotal) + selectedBefore;
            for (int t = runStart, rank = equalRank; t < runEnd; t++)
            {
                bool take = Forced(t, sinks, windowStart);
                if (!take)
                {
                    uint key = KernelMath.OrderedKey(a.Scores[inBase + t]);
                    take = key > threshold || (key == threshold && rank++ < needEqual);
                }
                if (take) a.Output[outBase + slot++] = t;
            }
            equalBefore += equalTotal;
            selectedBefore += selectedTotal;
        }
    }
}
