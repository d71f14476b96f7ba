namespace Tidal.Kernels.Kernels;

/// <summary>A 16-bit weight format: a chunk (8 elements) is one 16-byte load, which a kernel may hold raw (4 registers)
/// until used. Kernels take the format as a generic struct argument and are compiled once per format, so no format test
/// runs per load.</summary>
public interface IHalfWeights
{
    /// <summary>A raw chunk's 8 elements as floats, exactly.</summary>
    Vec8 Widen(U4 raw);
}

/// <summary>binary16 weights.</summary>
public struct F16Weights : IHalfWeights
{
    /// <inheritdoc/>
    public readonly Vec8 Widen(U4 raw) => Loads.WidenF16(raw);
}

/// <summary>bfloat16 weights.</summary>
public struct BF16Weights : IHalfWeights
{
    /// <inheritdoc/>
    public readonly Vec8 Widen(U4 raw) => Loads.WidenBF16(raw);
}
