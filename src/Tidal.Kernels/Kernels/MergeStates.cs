using ILGPU;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// Merges the split-K states of one (row, head): <see cref="DecodeAttentionKernel"/>'s last group of a head block to
/// finish runs it for each of the block's heads, with one warp per 8-channel chunk; lane t is split slot t (splits t,
/// t + 32, …, in order), so the splits' loads spread over the warp instead of forming one long dependent chain; the 32
/// slots then fold by shuffle-xor halving. Reference: Tidal.Core.Reference.Attention.MergeStates, bit for bit.
/// </summary>
internal static class MergeStates
{
    /// <summary>Where one head's states are and its merged output goes.</summary>
    public struct Head
    {
        /// <summary>Partial outputs; state s at (First + s · Heads) · HeadDim.</summary>
        public ArrayView<float> Partials;
        /// <summary>Partial log-sum-exps; state s at First + s · Heads.</summary>
        public ArrayView<float> Lses;
        /// <summary>The merged output: this head's d values from OutputAt.</summary>
        public ArrayView<float> Output;
        /// <summary>The head's first state.</summary>
        public long First;
        /// <summary>Where its merged output starts.</summary>
        public long OutputAt;
        /// <summary>States to merge (more than one).</summary>
        public int Splits;
        /// <summary>Query heads (the states' stride).</summary>
        public int Heads;
        /// <summary>Head dimension, a multiple of 8.</summary>
        public int HeadDim;
    }

    /// <summary>Warp <paramref name="chunk"/> merges channels [8 · chunk, 8 · chunk + 8) of the head.</summary>
    public static void Merge(in Head a, int chunk, int lane)
    {
        int splits = a.Splits;
        float m = float.NegativeInfinity;
        for (int s = lane; s < splits; s += 128)
        {
            float l0 = Lse(a, s), l1 = Lse(a, s + 32), l2 = Lse(a, s + 64), l3 = Lse(a, s + 96);
            m = MathF.Max(m, MathF.Max(MathF.Max(l0, l1), MathF.Max(l2, l3)));
        }
        for (int x = 16; x >= 1; x /= 2) m = MathF.Max(m, Warp.ShuffleXor(m, x));
        long at = a.OutputAt + chunk * 8;
        if (m == float.NegativeInfinity)
        {
            if (lane < 8) a.Output[at + lane] = 0f;
            return;
        }
        // Slot `lane` adds its states s, s + 32, … in order; four states' loads are issued together.
        float total = 0f;
        var o = new Vec8();
        ArrayView<F4> partials = a.Partials.Cast<F4>();
        for (int s = lane; s < splits; s += 128)
        {
            float l0 = Lse(a, s), l1 = Lse(a, s + 32), l2 = Lse(a, s + 64), l3 = Lse(a, s + 96);
            Vec8 p0 = Partial(a, partials, s, chunk), p1 = Partial(a, partials, s + 32, chunk);
            Vec8 p2 = Partial(a, partials, s + 64, chunk), p3 = Partial(a, partials, s + 96, chunk);
            AddState(l0, p0, m, ref total, ref o);
            if (s + 32 < splits) AddState(l1, p1, m, ref total, ref o);
            if (s + 64 < splits) AddState(l2, p2, m, ref total, ref o);
            if (s + 96 < splits) AddState(l3, p3, m, ref total, ref o);
        }
        total = KernelMath.FoldLanes(total);
        float channel = KernelMath.FoldChannels(o, lane);
        if ((lane & 3) == 0) a.Output[at + KernelMath.FoldedChannel(lane)] = channel / total;
    }

    private static float Lse(in Head a, int s) => s < a.Splits ? a.Lses[a.First + (long)s * a.Heads] : float.NegativeInfinity;

    private static Vec8 Partial(in Head a, ArrayView<F4> partials, int s, int chunk)
    {
        var v = new Vec8();
        if (s >= a.Splits) return v;
        long p = ((a.First + (long)s * a.Heads) * a.HeadDim + chunk * 8) / 4;
        F4 x = partials[p], y = partials[p + 1];
        v.F0 = x.X; v.F1 = x.Y; v.F2 = x.Z; v.F3 = x.W; v.F4 = y.X; v.F5 = y.Y; v.F6 = y.Z; v.F7 = y.W;
        return v;
    }

    /// <summary>Adds state weight w = e^(lse − m) to the total and w · partial to the output slots, with fma.</summary>
    private static void AddState(float lse, in Vec8 p, float m, ref float total, ref Vec8 o)
    {
        float w = KernelMath.Exp(KernelMath.Sub(lse, m));
        total = KernelMath.Add(total, w);
        o.Fma(w, p);
    }
}
