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

    /// <summary>Rows of an <see cref="IBackend.RmsNorm"/>: x and y [rows, n] for a weight of n elements.</summary>
    public static int NormRows(ITensor x, ITensor weight, ITensor y)
    {
        int rows = Rows(x, weight.Shape.ElementCount, nameof(x));
        if (y.Shape.ElementCount != x.Shape.ElementCount) throw new ArgumentException($"y ({y.Shape}) must hold as many elements as x ({x.Shape}).", nameof(y));
        return rows;
    }

    /// <summary>Rows and heads per row of a <see cref="IBackend.Rope"/> operand, [rows, heads, d] or [heads, d] (one row),
    /// whose positions [position, position + rows) the tables [maxPositions, d/2] must cover.</summary>
    /// <exception cref="ArgumentException">x is not made of head vectors of d elements, or a row's position is outside the tables.</exception>
    public static (int Rows, int Heads) RopeRows(ITensor x, ITensor cos, int position)
    {
        int d = 2 * cos.Shape[cos.Shape.Rank - 1];
        if (x.Shape.Rank == 3 && x.Shape[2] != d) throw new ArgumentException($"x ({x.Shape}) must be [rows, heads, {d}].", nameof(x));
        int rows = x.Shape.Rank == 3 ? x.Shape[0] : 1;
        if (position < 0 || position + rows > cos.Shape[0])
            throw new ArgumentOutOfRangeException(nameof(position), position, $"RoPE tables cover positions [0, {cos.Shape[0]}); rows need [{position}, {position + rows}).");
        return (rows, Rows(x, (long)rows * d, nameof(x)));
    }

    /// <summary>Rows of an <see cref="IBackend.AppendKv"/>: k and v [rows, kvHeads, d] written at [position, position + rows).</summary>
    /// <exception cref="ArgumentException">k and v do not match the cache, or the rows pass its end.</exception>
    public static int AppendRows(ITensor keys, ITensor k, ITensor v, int position)
    {
        (int kvHeads, int capacity, int d) = Cache(keys);
        int rows = Rows(k, (long)kvHeads * d, nameof(k));
        if (v.Shape.ElementCount != k.Shape.ElementCount)
            throw new ArgumentException($"k and v must be [rows, {kvHeads}, {d}] alike, got {k.Shape} and {v.Shape}.", nameof(v));
        if (position < 0 || position + rows > capacity)
            throw new ArgumentOutOfRangeException(nameof(position), position, $"the KV cache holds {capacity} positions; rows need [{position}, {position + rows}).");
        return rows;
    }

    /// <summary>Rows of an <see cref="IBackend.UpdatePageBounds"/>: key [rows, kvHeads, d] folded at [position, position + rows)
    /// into bounds [kvHeads, maxPages, d].</summary>
    /// <exception cref="ArgumentException">key does not match the bounds, or a row's page is outside them.</exception>
    public static int BoundRows(ITensor key, int position, ITensor min)
    {
        int kvHeads = min.Shape[0], pages = min.Shape[1], d = min.Shape[2];
        int rows = Rows(key, (long)kvHeads * d, nameof(key));
        if (position < 0 || (position + rows - 1) / Reference.Quest.PageSize >= pages)
            throw new ArgumentException($"positions [{position}, {position + rows}) are outside {pages} pages.", nameof(position));
        return rows;
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
