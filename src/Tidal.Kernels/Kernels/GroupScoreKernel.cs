using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// The group score of each token for shared selection: per head the log-sum-exp of its logits (32 token slots, warp
/// fold), then per token log Σ_h p_h(t) in log space. Reference: Tidal.Core.Reference.TopK.AggregateGroup.
/// </summary>
public sealed class GroupScoreKernel
{
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int> _lse;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int> _aggregate;

    /// <summary>Compiles the kernels.</summary>
    public GroupScoreKernel(Accelerator accelerator)
    {
        _lse = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int>(LogSumExp);
        _aggregate = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>(Aggregate);
    }

    /// <summary>logits [heads, n] → aggregated [groups, n]; <paramref name="lse"/> is [heads] scratch.</summary>
    public void Launch(ArrayView<float> logits, ArrayView<float> lse, ArrayView<float> aggregated, int heads, int groups, int n)
    {
        _lse(new KernelConfig(heads, 32), logits, lse, n);
        _aggregate(new KernelConfig(new Index2D((n + 127) / 128, groups), new Index2D(128, 1)), logits, lse, aggregated, heads, groups, n);
    }

    private static void LogSumExp(ArrayView<float> logits, ArrayView<float> lse, int n)
    {
        int head = Grid.IdxX, lane = Group.IdxX;
        long row = (long)head * n;
        float m = float.NegativeInfinity;
        for (int j = lane; j < n; j += 32) m = MathF.Max(m, logits[row + j]);
        for (int h = 16; h >= 1; h /= 2) m = MathF.Max(m, Warp.ShuffleXor(m, h));
        float slot = 0f;
        if (m != float.NegativeInfinity)
            for (int j = lane; j < n; j += 32) slot = KernelMath.Add(slot, KernelMath.Exp(KernelMath.Sub(logits[row + j], m)));
        float total = KernelMath.FoldLanes(slot, 32);
        if (lane == 0) lse[head] = m == float.NegativeInfinity || n == 0 ? float.NegativeInfinity : KernelMath.Add(m, KernelMath.Log(total));
    }

    private static void Aggregate(ArrayView<float> logits, ArrayView<float> lse, ArrayView<float> aggregated, int heads, int groups, int n)
    {
        int t = Grid.GlobalIndex.X, g = Grid.IdxY;
        if (t >= n) return;
        int size = heads / groups;
        float m = float.NegativeInfinity;
        for (int h = g * size; h < (g + 1) * size; h++) m = MathF.Max(m, KernelMath.Sub(logits[(long)h * n + t], lse[h]));
        if (m == float.NegativeInfinity)
        {
            aggregated[(long)g * n + t] = m;
            return;
        }
        float sum = 0f;
        for (int h = g * size; h < (g + 1) * size; h++)
            sum = KernelMath.Add(sum, KernelMath.Exp(KernelMath.Sub(KernelMath.Sub(logits[(long)h * n + t], lse[h]), m)));
        aggregated[(long)g * n + t] = KernelMath.Add(m, KernelMath.Log(sum));
    }
}
