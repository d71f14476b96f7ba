using System.Numerics.Tensors;
using Tidal.Core.Numerics;

namespace Tidal.Core.Reference;

/// <summary>Root-mean-square normalisation, as in Llama.</summary>
public static class RmsNorm
{
    /// <summary>
    /// y[i] = (x[i] · r) · w[i] with r = 1 / sqrt(Σx² / n + eps). Σx² follows the feature-axis order of
    /// <see cref="Reduction"/>; sqrt and the division are correctly rounded (sqrt.rn / div.rn on the GPU).
    /// </summary>
    /// <exception cref="ArgumentException">Lengths differ, or x is empty.</exception>
    public static void Apply<TW>(ReadOnlySpan<float> x, ReadOnlySpan<TW> weight, float eps, Span<float> y) where TW : unmanaged
    {
        if (x.IsEmpty) throw new ArgumentException("x is empty.", nameof(x));
        if (weight.Length != x.Length) throw new ArgumentException($"weight has {weight.Length} elements but x has {x.Length}.", nameof(weight));
        if (y.Length != x.Length) throw new ArgumentException($"y has {y.Length} elements but x has {x.Length}.", nameof(y));
        float r = InverseRms(x, eps);
        Span<float> w = x.Length <= 4096 ? stackalloc float[x.Length] : new float[x.Length];
        Conversions.ToSingle(weight, w);
        TensorPrimitives.Multiply(x, r, y);
        TensorPrimitives.Multiply(y, w, y);
    }

    /// <summary>1 / sqrt(Σx² / n + eps).</summary>
    public static float InverseRms(ReadOnlySpan<float> x, float eps) => 1f / MathF.Sqrt(Reduction.SumOfSquares(x) / x.Length + eps);
}
