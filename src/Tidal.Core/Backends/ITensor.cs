using Tidal.Core.Tensors;

namespace Tidal.Core.Backends;

/// <summary>
/// A tensor owned by an <see cref="IBackend"/> (host memory for the CPU backend, device memory for CUDA).
/// Disposing an owning tensor frees its memory; views made with <see cref="Slice"/> share it and free nothing.
/// </summary>
public interface ITensor : IDisposable
{
    /// <summary>Element type.</summary>
    DType DType { get; }

    /// <summary>Dimensions.</summary>
    Shape Shape { get; }

    /// <summary>Rows [start, start + count) of the first dimension, as a view.</summary>
    ITensor Slice(int start, int count);

    /// <summary>The same memory seen with another shape of equal element count, as a view.</summary>
    ITensor Reshape(Shape shape);
}
