using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using Tidal.Core.Numerics;

namespace Tidal.Core.Reference;

/// <summary>Max-subtracted softmax and log-sum-exp (never TensorPrimitives.SoftMax, which overflows on large logits).</summary>
public static class Softmax
{
    /// <summary>
    /// y[i] = e^(x[i] − m) / Σ e^(x[j] − m), m = max x. The sum follows the feature-axis order of <see cref="Reduction"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Lengths differ, or x is empty.</exception>
    public static void Apply(ReadOnlySpan<float> x, Span<float> y)
    {
        if (x.IsEmpty) throw new ArgumentException("x is empty.", nameof(x));
        if (y.Length != x.Length) throw new ArgumentException($"y has {y.Length} elements but x has {x.Length}.", nameof(y));
        float m = TensorPrimitives.Max(x);
        ExpShifted(x, m, y);
        float sum = Reduction.Sum(y);
        TensorPrimitives.Divide(y, sum, y);
    }

    /// <summary>y[i] = e^(x[i] − shift) with <see cref="TidalMath.Exp(Vector256{float})"/>.</summary>
    public static void ExpShifted(ReadOnlySpan<float> x, float shift, Span<float> y)
    {
        var s = Vector256.Create(shift);
        int i = 0;
        for (; i + 8 <= x.Length; i += 8) TidalMath.Exp(Vector256.Create(x.Slice(i, 8)) - s).CopyTo(y.Slice(i));
        for (; i < x.Length; i++) y[i] = TidalMath.Exp(x[i] - shift);
    }

    /// <summary>Entries per block of <see cref="LogSumExpTokens"/>.</summary>
    public const int LseBlock = 512;

    /// <summary>
    /// log Σ e^(x[j]) over token-axis entries (a row of attention logits), computed the way split-K attention computes
    /// its normaliser, so a GPU spreads a long row over many groups: per block of <see cref="LseBlock"/> entries,
    /// lse_b = m_b + log Σ e^(x[j] − m_b) (m_b the block's max, the sum in the token-axis order of
    /// <see cref="Reduction"/>); then M = max lse_b and lse = M + log Σ_b e^(lse_b − M), again in the token-axis order.
    /// One block's lse is the result as is. Empty or all −∞ gives −∞.
    /// </summary>
    public static float LogSumExpTokens(ReadOnlySpan<float> x)
    {
        if (x.IsEmpty) return float.NegativeInfinity;
        int blocks = (x.Length + LseBlock - 1) / LseBlock;
        if (blocks == 1) return LogSumExpBlock(x);
        var lses = new float[blocks];
        for (int b = 0; b < blocks; b++) lses[b] = LogSumExpBlock(x.Slice(b * LseBlock, Math.Min(LseBlock, x.Length - b * LseBlock)));
        return MergeLogSumExps(lses);
    }

    /// <summary>One block of <see cref="LogSumExpTokens"/>: m + log Σ e^(x[j] − m) in the token-axis order.</summary>
    public static float LogSumExpBlock(ReadOnlySpan<float> x)
    {
        float m = TensorPrimitives.Max(x);
        if (float.IsNegativeInfinity(m)) return m;
        return m + TidalMath.Log(SumExpTokens(x, m));
    }

    /// <summary>The merge step of <see cref="LogSumExpTokens"/>: M + log Σ e^(lse_b − M) in the token-axis order.</summary>
    public static float MergeLogSumExps(ReadOnlySpan<float> lses)
    {
        float m = TensorPrimitives.Max(lses);
        if (float.IsNegativeInfinity(m)) return m;
        return m + TidalMath.Log(SumExpTokens(lses, m));
    }

    private static float SumExpTokens(ReadOnlySpan<float> x, float m)
    {
        Span<float> slots = stackalloc float[Reduction.Slots];
        slots.Clear();
        for (int j = 0; j < x.Length; j++) slots[j & (Reduction.Slots - 1)] += TidalMath.Exp(x[j] - m);
        return Reduction.FoldHalving(slots.Slice(0, Math.Min(x.Length, Reduction.Slots)));
    }
}
