namespace Tidal.Core.Reference;

/// <summary>
/// One layer's KV cache as attention reads it: keys and values each [kvHeads, capacity, headDim] (row-major),
/// of which positions [0, <see cref="Length"/>) are valid.
/// </summary>
public readonly ref struct KvView<T> where T : unmanaged
{
    /// <summary>Wraps the cache spans after checking that they match the geometry.</summary>
    /// <exception cref="ArgumentException">Non-positive sizes, spans of the wrong length, or length &gt; capacity.</exception>
    public KvView(ReadOnlySpan<T> keys, ReadOnlySpan<T> values, int kvHeads, int capacity, int headDim, int length)
    {
        if (kvHeads <= 0) throw new ArgumentException($"kvHeads must be > 0, got {kvHeads}.", nameof(kvHeads));
        if (headDim <= 0) throw new ArgumentException($"headDim must be > 0, got {headDim}.", nameof(headDim));
        if (capacity <= 0) throw new ArgumentException($"capacity must be > 0, got {capacity}.", nameof(capacity));
        if ((uint)length > (uint)capacity) throw new ArgumentException($"length {length} is outside [0, capacity {capacity}].", nameof(length));
        long size = (long)kvHeads * capacity * headDim;
        if (keys.Length != size) throw new ArgumentException($"keys has {keys.Length} elements, expected [{kvHeads}, {capacity}, {headDim}] = {size}.", nameof(keys));
        if (values.Length != size) throw new ArgumentException($"values has {values.Length} elements, expected {size}.", nameof(values));
        Keys = keys;
        Values = values;
        KvHeads = kvHeads;
        Capacity = capacity;
        HeadDim = headDim;
        Length = length;
    }

    /// <summary>Keys, [kvHeads, capacity, headDim].</summary>
    public ReadOnlySpan<T> Keys { get; }

    /// <summary>Values, [kvHeads, capacity, headDim].</summary>
    public ReadOnlySpan<T> Values { get; }

    /// <summary>Number of KV heads.</summary>
    public int KvHeads { get; }

    /// <summary>Positions allocated per head.</summary>
    public int Capacity { get; }

    /// <summary>Head dimension d.</summary>
    public int HeadDim { get; }

    /// <summary>Valid positions.</summary>
    public int Length { get; }

    /// <summary>The key of <paramref name="kvHead"/> at <paramref name="position"/>.</summary>
    public ReadOnlySpan<T> Key(int kvHead, int position) => Keys.Slice((kvHead * Capacity + position) * HeadDim, HeadDim);

    /// <summary>The value of <paramref name="kvHead"/> at <paramref name="position"/>.</summary>
    public ReadOnlySpan<T> Value(int kvHead, int position) => Values.Slice((kvHead * Capacity + position) * HeadDim, HeadDim);

    /// <summary>Query heads per KV head for <paramref name="queryLength"/> query values, checking divisibility.</summary>
    /// <exception cref="ArgumentException">q is not [nHeads, headDim] with nHeads a positive multiple of kvHeads.</exception>
    public int GroupSize(int queryLength)
    {
        if (queryLength == 0 || queryLength % HeadDim != 0)
            throw new ArgumentException($"q has {queryLength} elements, not a positive multiple of headDim {HeadDim}.", "q");
        int heads = queryLength / HeadDim;
        if (heads % KvHeads != 0)
            throw new ArgumentException($"{heads} query heads cannot share {KvHeads} KV heads (GQA needs nHeads % nKvHeads == 0).", "q");
        return heads / KvHeads;
    }
}
