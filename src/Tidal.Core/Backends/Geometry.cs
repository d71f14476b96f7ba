using Tidal.Core.Tensors;

namespace Tidal.Core.Backends;

/// <summary>Shape checks every backend makes the same way, with the same messages.</summary>
public static class Geometry
{
    /// <summary>A KV cache's dimensions.</summary>
    /// <exception cref="ArgumentException">The cache is not [kvHeads, capacity, headDim].</exception>
    public static (int KvHeads, int Capacity, int HeadDim) Cache(ITensor cache) =>
        cache.Shape.Rank == 3 ? (cache.Shape[0], cache.Shape[1], cache.Shape[2])
            : throw new ArgumentException($"a KV cache is [kvHeads, capacity, headDim], got {cache.Shape}.", nameof(cache));

    /// <summary>How many rows of <paramref name="rowElements"/> elements <paramref name="x"/> holds (a vector is one row).</summary>
    /// <exception cref="ArgumentException">x is empty or not a whole number of rows.</exception>
    public static int Rows(ITensor x, long rowElements, string name) =>
        rowElements > 0 && x.Shape.ElementCount > 0 && x.Shape.ElementCount % rowElements == 0
            ? (int)(x.Shape.ElementCount / rowElements)
            : throw new ArgumentException($"{name} ({x.Shape}) is not a whole number of rows of {rowElements} elements.", name);

    /// <summary>Rows and heads per row of a <see cref="IBackend.Rope"/> operand: [rows, heads, d], or [heads, d] (one row).</summary>
    /// <exception cref="ArgumentException">x is not made of head vectors of <paramref name="d"/> elements.</exception>
    public static (int Rows, int Heads) RopeRows(ITensor x, int d)
    {
        if (x.Shape.Rank == 3 && x.Shape[2] != d) throw new ArgumentException($"x ({x.Shape}) must be [rows, heads, {d}].", nameof(x));
        int rows = x.Shape.Rank == 3 ? x.Shape[0] : 1;
        return (rows, Rows(x, (long)rows * d, nameof(x)));
    }

    /// <summary>Rows, query heads and head dimension of <see cref="IBackend.CausalAttention"/>'s arguments.</summary>
    /// <exception cref="ArgumentException">Shapes that disagree, or a last row past the cache.</exception>
    public static (int Rows, int Heads, int HeadDim) Causal(ITensor q, ITensor keys, int first, ITensor output)
    {
        (int kvHeads, int capacity, int d) = Cache(keys);
        if (q.Shape.Rank != 2 || output.Shape.Rank != 2 || q.Shape[0] != output.Shape[0])
            throw new ArgumentException($"q and output must be [rows, width] with one row count, got {q.Shape} and {output.Shape}.", nameof(q));
        int rows = q.Shape[0], width = output.Shape[1];
        if (width % d != 0 || width / d % kvHeads != 0 || q.Shape[1] < width || q.Shape[1] % d != 0)
            throw new ArgumentException($"output rows ({width}) must hold heads × {d} with heads a multiple of {kvHeads}, and q rows ({q.Shape[1]}) whole heads, at least as many.", nameof(output));
        if (first < 1 || first + rows - 1 > capacity)
            throw new ArgumentException($"rows attend to [0, {first}) … [0, {first + rows - 1}); the cache holds {capacity} positions.", nameof(first));
        return (rows, width / d, d);
    }
}
