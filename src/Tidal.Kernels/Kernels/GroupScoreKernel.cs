using ILGPU;
using ILGPU.Runtime;
using Tidal.Core.Reference;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// The group score of each token for shared selection: per head the log-sum-exp of its logits (one warp per block of
/// <see cref="Softmax.LseBlock"/> logits; the head's last group to finish merges the blocks), then per token
/// log Σ_h p_h(t) in log space. Reference: Tidal.Core.Reference.TopK.AggregateGroup with Softmax.LogSumExpTokens.
/// </summary>
public sealed class GroupScoreKernel
{
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, int> _lse;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int> _aggregate;

    /// <summary>Compiles the kernels.</summary>
    public GroupScoreKernel(Accelerator accelerator)
    {
        _lse = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, int>(LogSumExps);
        _aggregate = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(Aggregate);
    }

    /// <summary>Scratch floats <see cref="LaunchLogSumExps"/> needs for <paramref name="heads"/> rows of <paramref name="n"/> logits.</summary>
    public static long ScratchSize(int heads, int n) => (long)heads * (Blocks(n) + 1);

    private static int Blocks(int n) => Math.Max(1, (n + Softmax.LseBlock - 1) / Softmax.LseBlock);

    /// <summary>Group scores aggregated [groups, n] from logits [heads, n] and the heads' log-sum-exps
    /// (<see cref="LaunchLogSumExps"/>).</summary>
    public void LaunchScores(ArrayView<float> logits, ArrayView<float> lse, ArrayView<float> aggregated, int heads, int groups, int n) =>
        _aggregate(new KernelConfig(new Index2D((n + 127) / 128, groups), new Index2D(128, 1)), logits, lse, aggregated, heads, groups, n);

    /// <summary>Each head's log-sum-exp of logits [heads, n], returned as a view of <paramref name="scratch"/>
    /// (<see cref="ScratchSize"/> floats); <paramref name="tickets"/> holds <paramref name="heads"/> ints, zero before
    /// the launch and left zero by it.</summary>
    public ArrayView<float> LaunchLogSumExps(ArrayView<float> logits, ArrayView<float> scratch, ArrayView<int> tickets, int heads, int n)
    {
        int blocks = Blocks(n);
        ArrayView<float> lse = scratch.SubView(0, heads), blockLse = scratch.SubView(heads, (long)heads * blocks);
        _lse(new KernelConfig(new Index2D((blocks + BlockWarps - 1) / BlockWarps, heads), new Index2D(32 * BlockWarps, 1)), logits, blockLse, lse, tickets.SubView(0, heads), n);
        return lse;
    }

    /// <summary>m + log of the sum of the 32 lanes' slot values (folded by halving); −∞ when m is.</summary>
    private static float Finish(float m, float slot) =>
        m == float.NegativeInfinity ? m : KernelMath.Add(m, KernelMath.Log(KernelMath.FoldLanes(slot)));

    /// <summary>Warps per group of <see cref="LogSumExps"/>: groups of one warp would cap an SM at 32 of them (half
    /// its threads).</summary>
    private const int BlockWarps = 4;

    /// <summary>One warp per block of 512 logits: lane l holds entries l, l + 32, …, l + 480 (all 16 loads in flight
    /// at once; ILGPU does not unroll loops), so its slot adds them in ascending order as the reference's slot l does.
    /// The head's last group to finish (<see cref="LastGroup"/>) merges, by its first warp, the head's blocks
    /// (a launch of its own cost its launch gap and a grid of one warp per head).</summary>
    private static void LogSumExps(ArrayView<float> logits, ArrayView<float> blockLse, ArrayView<float> lse, ArrayView<int> tickets, int n)
    {
        int blocks = Blocks(n), block = Grid.IdxX * BlockWarps + Warp.WarpIdx, head = Grid.IdxY, lane = Warp.LaneIdx;
        if (block < blocks)
        {
            int start = block * Softmax.LseBlock, count = Math.Min(Softmax.LseBlock, n - start);
            long row = (long)head * n + start;
            Vec8 low = Entries(logits, row, lane, count), high = Entries(logits, row, lane + 256, count);
            float m = MathF.Max(Max(low), Max(high));
            for (int h = 16; h >= 1; h /= 2) m = MathF.Max(m, Warp.ShuffleXor(m, h));
            float slot = 0f;
            if (m != float.NegativeInfinity)
            {
                slot = SumExp(slot, low, m, lane, count);
                slot = SumExp(slot, high, m, lane + 256, count);
            }
            float total = Finish(m, slot);
            if (lane == 0) blockLse[(long)head * blocks + block] = total;
        }
        bool last = LastGroup.Arrive(tickets.SubView(head, 1), Grid.DimX, SharedMemory.Allocate<int>(1));
        if (last && Warp.WarpIdx == 0) MergeBlocks(blockLse, lse, head, blocks, lane);
    }

    /// <summary>Entries j, j + 32, …, j + 224 of a block (−∞ past its end).</summary>
    private static Vec8 Entries(ArrayView<float> logits, long row, int j, int count)
    {
        var v = new Vec8();
        v.F0 = Entry(logits, row, j, count); v.F1 = Entry(logits, row, j + 32, count);
        v.F2 = Entry(logits, row, j + 64, count); v.F3 = Entry(logits, row, j + 96, count);
        v.F4 = Entry(logits, row, j + 128, count); v.F5 = Entry(logits, row, j + 160, count);
        v.F6 = Entry(logits, row, j + 192, count); v.F7 = Entry(logits, row, j + 224, count);
        return v;
    }

    private static float Entry(ArrayView<float> logits, long row, int j, int count) => j < count ? logits[row + j] : float.NegativeInfinity;

    private static float Max(in Vec8 v) =>
        MathF.Max(MathF.Max(MathF.Max(v.F0, v.F1), MathF.Max(v.F2, v.F3)), MathF.Max(MathF.Max(v.F4, v.F5), MathF.Max(v.F6, v.F7)));

    /// <summary>Adds e^(x − m) of the entries of <see cref="Entries"/> inside the block to the slot, in order.</summary>
    private static float SumExp(float slot, in Vec8 v, float m, int j, int count)
    {
        if (j < count) slot = KernelMath.Add(slot, KernelMath.Exp(KernelMath.Sub(v.F0, m)));
        if (j + 32 < count) slot = KernelMath.Add(slot, KernelMath.Exp(KernelMath.Sub(v.F1, m)));
        if (j + 64 < count) slot = KernelMath.Add(slot, KernelMath.Exp(KernelMath.Sub(v.F2, m)));
        if (j + 96 < count) slot = KernelMath.Add(slot, KernelMath.Exp(KernelMath.Sub(v.F3, m)));
        if (j + 128 < count) slot = KernelMath.Add(slot, KernelMath.Exp(KernelMath.Sub(v.F4, m)));
        if (j + 160 < count) slot = KernelMath.Add(slot, KernelMath.Exp(KernelMath.Sub(v.F5, m)));
        if (j + 192 < count) slot = KernelMath.Add(slot, KernelMath.Exp(KernelMath.Sub(v.F6, m)));
        if (j + 224 < count) slot = KernelMath.Add(slot, KernelMath.Exp(KernelMath.Sub(v.F7, m)));
        return slot;
    }

    /// <summary>The head's log-sum-exp from its blocks', by one warp (lane l adds blocks l, l + 32, … in order).</summary>
    private static void MergeBlocks(ArrayView<float> blockLse, ArrayView<float> lse, int head, int blocks, int lane)
    {
        long row = (long)head * blocks;
        if (blocks == 1)
        {
            if (lane == 0) lse[head] = blockLse[row];
            return;
        }
        float m = float.NegativeInfinity;
        for (int b = lane; b < blocks; b += 32) m = MathF.Max(m, blockLse[row + b]);
        for (int h = 16; h >= 1; h /= 2) m = MathF.Max(m, Warp.ShuffleXor(m, h));
        float slot = 0f;
        if (m != float.NegativeInfinity)
            for (int b = lane; b < blocks; b += 32) slot = KernelMath.Add(slot, KernelMath.Exp(KernelMath.Sub(blockLse[row + b], m)));
        float total = Finish(m, slot);
        if (lane == 0) lse[head] = total;
    }

    /// <summary>Per token, log Σ_h e^(x_h − lse_h) over the group's heads, with m = max_h (x_h − lse_h) taken out first,
    /// adding in head order as the reference does. The group's logits of a token are loaded eight heads at a time, all in
    /// flight at once (ILGPU does not unroll loops): a group of at most eight heads loads each once.</summary>
    private static void Aggregate(ArrayView<float> logits, ArrayView<float> lse, ArrayView<float> aggregated, int heads, int groups, int n)
    {
        int t = Grid.GlobalIndex.X, g = Grid.IdxY;
        if (t >= n) return;
        int size = heads / groups, first = g * size;
        Vec8 x = Normalized8(logits, lse, first, size, n, t);
        float m = Max(x);
        for (int c = 8; c < size; c += 8) m = MathF.Max(m, Max(Normalized8(logits, lse, first + c, size - c, n, t)));
        if (m == float.NegativeInfinity)
        {
            aggregated[(long)g * n + t] = m;
            return;
        }
        float sum = Sum8(0f, x, m, size);
        for (int c = 8; c < size; c += 8) sum = Sum8(sum, Normalized8(logits, lse, first + c, size - c, n, t), m, size - c);
        aggregated[(long)g * n + t] = KernelMath.Add(m, KernelMath.Log(sum));
    }

    /// <summary>x_h − lse_h of token t for heads first … first + 7 (−∞ from the <paramref name="count"/>-th on).</summary>
    private static Vec8 Normalized8(ArrayView<float> logits, ArrayView<float> lse, int first, int count, int n, int t)
    {
        var v = new Vec8();
        v.F0 = Normalized(logits, lse, first, 0, count, n, t); v.F1 = Normalized(logits, lse, first, 1, count, n, t);
        v.F2 = Normalized(logits, lse, first, 2, count, n, t); v.F3 = Normalized(logits, lse, first, 3, count, n, t);
        v.F4 = Normalized(logits, lse, first, 4, count, n, t); v.F5 = Normalized(logits, lse, first, 5, count, n, t);
        v.F6 = Normalized(logits, lse, first, 6, count, n, t); v.F7 = Normalized(logits, lse, first, 7, count, n, t);
        return v;
    }

    private static float Normalized(ArrayView<float> logits, ArrayView<float> lse, int first, int j, int count, int n, int t) =>
        j < count ? KernelMath.Sub(logits[(long)(first + j) * n + t], lse[first + j]) : float.NegativeInfinity;

    /// <summary>Adds e^(v_j − m) for j below <paramref name="count"/>, in order.</summary>
    private static float Sum8(float sum, in Vec8 v, float m, int count)
    {
        if (count > 0) sum = KernelMath.Add(sum, KernelMath.Exp(KernelMath.Sub(v.F0, m)));
        if (count > 1) sum = KernelMath.Add(sum, KernelMath.Exp(KernelMath.Sub(v.F1, m)));
        if (count > 2) sum = KernelMath.Add(sum, KernelMath.Exp(KernelMath.Sub(v.F2, m)));
        if (count > 3) sum = KernelMath.Add(sum, KernelMath.Exp(KernelMath.Sub(v.F3, m)));
        if (count > 4) sum = KernelMath.Add(sum, KernelMath.Exp(KernelMath.Sub(v.F4, m)));
        if (count > 5) sum = KernelMath.Add(sum, KernelMath.Exp(KernelMath.Sub(v.F5, m)));
        if (count > 6) sum = KernelMath.Add(sum, KernelMath.Exp(KernelMath.Sub(v.F6, m)));
        if (count > 7) sum = KernelMath.Add(sum, KernelMath.Exp(KernelMath.Sub(v.F7, m)));
        return sum;
    }
}
