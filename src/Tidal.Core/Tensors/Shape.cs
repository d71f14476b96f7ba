using System.Collections.Immutable;

namespace Tidal.Core.Tensors;

/// <summary>A row-major tensor shape: dimensions outermost first, with the element strides they imply.</summary>
public readonly struct Shape : IEquatable<Shape>
{
    private readonly ImmutableArray<int> _dims;

    /// <summary>Creates a shape; every dimension must be ≥ 0 and the element count must fit in a long.</summary>
    /// <exception cref="ArgumentException">A negative dimension or an overflowing element count.</exception>
    public Shape(params ReadOnlySpan<int> dims)
    {
        long count = 1;
        for (int i = 0; i < dims.Length; i++)
        {
            if (dims[i] < 0) throw new ArgumentException($"dimension {i} is {dims[i]}; dimensions must be >= 0.", nameof(dims));
            count = checked(count * dims[i]);
        }
        _dims = ImmutableArray.Create(dims);
        ElementCount = count;
    }

    /// <summary>Number of dimensions.</summary>
    public int Rank => _dims.IsDefault ? 0 : _dims.Length;

    /// <summary>Product of the dimensions (1 for a scalar).</summary>
    public long ElementCount { get; }

    /// <summary>The dimensions, outermost first.</summary>
    public ReadOnlySpan<int> Dims => _dims.IsDefault ? default : _dims.AsSpan();

    /// <summary>Size of dimension <paramref name="axis"/>.</summary>
    public int this[int axis] => _dims[axis];

    /// <summary>Elements between consecutive indices of <paramref name="axis"/> (row-major).</summary>
    public long Stride(int axis)
    {
        if ((uint)axis >= (uint)Rank) throw new ArgumentOutOfRangeException(nameof(axis), axis, $"shape {this} has rank {Rank}.");
        long stride = 1;
        for (int i = Rank - 1; i > axis; i--) stride *= _dims[i];
        return stride;
    }

    /// <summary>The shape without its first dimension (the shape of one row).</summary>
    public Shape Inner => new(Dims.Slice(1));

    /// <inheritdoc/>
    public bool Equals(Shape other) => Dims.SequenceEqual(other.Dims);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Shape s && Equals(s);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (int d in Dims) hash.Add(d);
        return hash.ToHashCode();
    }

    /// <summary>Equality of dimensions.</summary>
    public static bool operator ==(Shape left, Shape right) => left.Equals(right);

    /// <summary>Inequality of dimensions.</summary>
    public static bool operator !=(Shape left, Shape right) => !left.Equals(right);

    /// <inheritdoc/>
    public override string ToString() => "[" + string.Join(", ", _dims.IsDefault ? [] : _dims) + "]";
}
