using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Quest's page scoring (one warp per (query head, page): Σ max(q·max, q·min) in the feature-axis order, times 1/√d)
/// and the expansion of selected pages into token positions.
/// Reference: Tidal.Core.Reference.Quest.ScorePages and Quest.SelectTokens.
/// </summary>
public sealed class QuestPagesKernel
{
    private const int WarpsPerGroup = 4;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, PageShape> _score;
    private readonly Action<KernelConfig, ArrayView<int>, ArrayView<int>, int, int, int> _expand;

    /// <summary>Sizes of one scoring.</summary>
    public struct PageShape
    {
        /// <summary>Query heads.</summary>
        public int Heads;
        /// <summary>Query heads per KV head.</summary>
        public int Group;
        /// <summary>Head dimension.</summary>
        public int HeadDim;
        /// <summary>Pages scored (covering the context).</summary>
        public int Pages;
        /// <summary>Pages per KV head in the bounds buffers.</summary>
        public int MaxPages;
        /// <summary>1/√d.</summary>
        public float Scale;
    }

    /// <summary>Compiles the kernels.</summary>
    public QuestPagesKernel(Accelerator accelerator)
    {
        _score = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, PageShape>(Score);
        _expand = accelerator.LoadStreamKernel<ArrayView<int>, ArrayView<int>, int, int, int>(Expand);
    }

    /// <summary>q [heads, d], bounds [kvHeads, maxPages, d] → scores [heads, pages].</summary>
    public void LaunchScore(ArrayView<float> q, ArrayView<float> min, ArrayView<float> max, ArrayView<float> scores, PageShape shape) =>
        _score(new KernelConfig(new Index2D((shape.Pages + WarpsPerGroup - 1) / WarpsPerGroup, shape.Heads), new Index2D(32 * WarpsPerGroup, 1)), q, min, max, scores, shape);

    /// <summary>pages [heads, pagesPerHead] (ascending) → tokens [heads, count]: every page full but the last.</summary>
    public void LaunchExpand(ArrayView<int> pages, ArrayView<int> tokens, int heads, int pagesPerHead, int count) =>
        _expand(new KernelConfig(new Index2D((count + 127) / 128, heads), new Index2D(128, 1)), pages, tokens, heads, pagesPerHead, count);

    private static void Score(ArrayView<float> q, ArrayView<float> min, ArrayView<float> max, ArrayView<float> scores, PageShape s)
    {
        int page = Grid.IdxX * WarpsPerGroup + Warp.WarpIdx, head = Grid.IdxY, lane = Warp.LaneIdx, d = s.HeadDim;
        int chunks = (d + 7) / 8;
        long bounds = ((long)(head / s.Group) * s.MaxPages + (page < s.Pages ? page : 0)) * d;
        var acc = new Vec8();
        for (int c = lane; c < chunks; c += 32)
        {
            Vec8 qv = Loads.Activations(q, (long)head * d, c, d);
            Vec8 hi = Loads.Activations(max, bounds, c, d);
            Vec8 lo = Loads.Activations(min, bounds, c, d);
            acc.F0 = KernelMath.Add(acc.F0, MathF.Max(KernelMath.Mul(qv.F0, hi.F0), KernelMath.Mul(qv.F0, lo.F0)));
            acc.F1 = KernelMath.Add(acc.F1, MathF.Max(KernelMath.Mul(qv.F1, hi.F1), KernelMath.Mul(qv.F1, lo.F1)));
            acc.F2 = KernelMath.Add(acc.F2, MathF.Max(KernelMath.Mul(qv.F2, hi.F2), KernelMath.Mul(qv.F2, lo.F2)));
            acc.F3 = KernelMath.Add(acc.F3, MathF.Max(KernelMath.Mul(qv.F3, hi.F3), KernelMath.Mul(qv.F3, lo.F3)));
            acc.F4 = KernelMath.Add(acc.F4, MathF.Max(KernelMath.Mul(qv.F4, hi.F4), KernelMath.Mul(qv.F4, lo.F4)));
            acc.F5 = KernelMath.Add(acc.F5, MathF.Max(KernelMath.Mul(qv.F5, hi.F5), KernelMath.Mul(qv.F5, lo.F5)));
            acc.F6 = KernelMath.Add(acc.F6, MathF.Max(KernelMath.Mul(qv.F6, hi.F6), KernelMath.Mul(qv.F6, lo.F6)));
            acc.F7 = KernelMath.Add(acc.F7, MathF.Max(KernelMath.Mul(qv.F7, hi.F7), KernelMath.Mul(qv.F7, lo.F7)));
        }
        float sum = KernelMath.FoldLanes(KernelMath.FoldSlots(acc));
        if (lane == 0 && page < s.Pages) scores[(long)head * s.Pages + page] = KernelMath.Mul(sum, s.Scale);
    }

    private static void Expand(ArrayView<int> pages, ArrayView<int> tokens, int heads, int pagesPerHead, int count)
    {
        int i = Grid.GlobalIndex.X, head = Grid.IdxY;
        if (i >= count) return;
        tokens[(long)head * count + i] = pages[(long)head * pagesPerHead + i / 16] * 16 + i % 16;
    }
}
