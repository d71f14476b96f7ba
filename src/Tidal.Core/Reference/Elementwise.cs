using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using Tidal.Core.Numerics;

namespace Tidal.Core.Reference;

/// <summary>Elementwise ops of a decoder layer. No reductions, so every backend agrees bit for bit trivially.</summary>
public static class Elementwise
{
    /// <summary>The residual connection: x[i] += y[i].</summary>
    /// <exception cref="ArgumentException">Lengths differ.</exception>
    public static void AddInPlace(Span<float> x, ReadOnlySpan<float> y)
    {
        if (y.Length != x.Length) throw new ArgumentException($"y has {y.Length} elements but x has {x.Length}.", nameof(y));
        TensorPrimitives.Add(x, y, x);
    }

    /// <summary>
    /// SwiGLU: out[i] = SiLU(gate[i]) · up[i], SiLU(g) = g / (1 + e^−g) with <see cref="TidalMath.Exp(float)"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Lengths differ.</exception>
    public static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> output)
    {
        if (up.Length != gate.Length) throw new ArgumentException($"up has {up.Length} elements but gate has {gate.Length}.", nameof(up));
        if (output.Length != gate.Length) throw new ArgumentException($"output has {output.Length} elements but gate has {gate.Length}.", nameof(output));
        int i = 0;
        for (; i + 8 <= gate.Length; i += 8)
            (TidalMath.Silu(Vector256.Create(gate.Slice(i, 8))) * Vector256.Create(up.Slice(i, 8))).CopyTo(output.Slice(i));
        for (; i < gate.Length; i++) output[i] = TidalMath.Silu(gate[i]) * up[i];
    }

    /// <summary>Copies row <paramref name="token"/> of an embedding table [vocab, dim] into <paramref name="output"/>, widened to F32.</summary>
    /// <exception cref="ArgumentException">The table is not a whole number of rows of output's length.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The token is outside the vocabulary.</exception>
    public static void Embed<T>(ReadOnlySpan<T> table, int token, Span<float> output) where T : unmanaged
    {
        int dim = output.Length;
        if (dim == 0 || table.Length % dim != 0)
            throw new ArgumentException($"table of {table.Length} elements is not [vocab, {dim}].", nameof(table));
        int vocab = table.Length / dim;
        if ((uint)token >= (uint)vocab)
            throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary of {vocab}.");
        Conversions.ToSingle(table.Slice(token * dim, dim), output);
    }

    /// <summary>Index of the largest element; the lowest index wins ties; NaN never wins (all NaN gives 0).</summary>
    /// <exception cref="ArgumentException">x is empty.</exception>
    public static int Argmax(ReadOnlySpan<float> x)
    {
        if (x.IsEmpty) throw new ArgumentException("x is empty.", nameof(x));
        int best = 0;
        float bestValue = float.NegativeInfinity;
        bool found = false;
        for (int i = 0; i < x.Length; i++)
        {
            if (x[i] > bestValue || (!found && !float.IsNaN(x[i])))
            {
                best = i;
                bestValue = x[i];
                found = true;
            }
        }
        return best;
    }
}
