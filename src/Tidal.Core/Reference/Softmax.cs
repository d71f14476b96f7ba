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

    /// <summary>
    /// log Σ e^(x[j]) over token-axis entries (a row of attention logits): m + log Σ e^(x[j] − m), the sum in the
    /// token-axis order of <see cref="Reduction"/>. Empty or all −∞ gives −∞.
    /// </summary>
    public static float LogSumExpTokens(ReadOnlySpan<float> x)
    {
        if (x.IsEmpty) return float.NegativeInfinity;
        float m = TensorPrimitives.Max(x);
        if (float.IsNegativeInfinity(m)) return m;
        Span<float> slots = stackalloc float[Reduction.Slots];
        slots.Clear();
        for (int j = 0; j < x.Length; j++) slots[j & (Reduction.Slots - 1)] += TidalMath.Exp(x[j] - m);
        return m + TidalMath.Log(Reduction.FoldHalving(slots.Slice(0, Math.Min(x.Length, Reduction.Slots))));
    }
}
