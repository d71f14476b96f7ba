using ILGPU;

namespace Tidal.Kernels.Kernels;

/// <summary>How a weight format turns chunk c of the weights (8 elements) into floats. Kernels take the format as a
/// generic struct argument and are compiled once per format, so no format test runs per load.</summary>
public interface IWeights
{
    /// <summary>Elements [8c, 8c + 8) of <paramref name="w"/>, widened exactly.</summary>
    Vec8 Load(ArrayView<byte> w, long c);
}

/// <summary>A 16-bit weight format: a chunk is one 16-byte load, which a kernel may hold raw (4 registers) until used.</summary>
public interface IHalfWeights : IWeights
{
    /// <summary>A raw chunk's 8 elements as floats, exactly.</summary>
    Vec8 Widen(U4 raw);
}

/// <summary>binary32 weights: two 16-byte loads per chunk.</summary>
public struct F32Weights : IWeights
{
    /// <inheritdoc/>
    public readonly Vec8 Load(ArrayView<byte> w, long c) => Loads.Chunk(w, c, Format.F32);
}

/// <summary>binary16 weights.</summary>
public struct F16Weights : IHalfWeights
{
    /// <inheritdoc/>
    public readonly Vec8 Load(ArrayView<byte> w, long c) => Loads.Chunk(w, c, Format.F16);

    /// <inheritdoc/>
    public readonly Vec8 Widen(U4 raw) => Loads.WidenF16(raw);
}

/// <summary>bfloat16 weights.</summary>
public struct BF16Weights : IHalfWeights
{
    /// <inheritdoc/>
    public readonly Vec8 Load(ArrayView<byte> w, long c) => Loads.Chunk(w, c, Format.BF16);

    /// <inheritdoc/>
    public readonly Vec8 Widen(U4 raw) => Loads.WidenBF16(raw);
}
