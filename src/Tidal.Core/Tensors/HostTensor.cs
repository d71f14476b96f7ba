using System.Runtime.InteropServices;

namespace Tidal.Core.Tensors;

/// <summary>
/// A tensor in host memory: a dtype, a row-major shape and a byte range of a <see cref="HostBuffer"/>.
/// Views (<see cref="Row"/>, <see cref="Reshape"/>) share the buffer; only the tensor that owns the buffer
/// releases it on dispose.
/// </summary>
public sealed class HostTensor : IDisposable
{
    private readonly HostBuffer _buffer;
    private readonly long _offset;
    private readonly bool _ownsBuffer;

    private HostTensor(HostBuffer buffer, long offset, DType type, Shape shape, bool ownsBuffer)
    {
        long bytes = checked(shape.ElementCount * type.SizeOf());
        if (offset < 0 || offset > buffer.Length - bytes)
            throw new ArgumentOutOfRangeException(nameof(offset), $"a {type} tensor of shape {shape} ({bytes} bytes) at offset {offset} does not fit a buffer of {buffer.Length} bytes.");
        _buffer = buffer;
        _offset = offset;
        DType = type;
        Shape = shape;
        _ownsBuffer = ownsBuffer;
    }

    /// <summary>Element type.</summary>
    public DType DType { get; }

    /// <summary>Dimensions.</summary>
    public Shape Shape { get; }

    /// <summary>Size in bytes.</summary>
    public long ByteLength => Shape.ElementCount * DType.SizeOf();

    /// <summary>A zeroed tensor in pooled memory, owned by the result.</summary>
    public static HostTensor Allocate(DType type, Shape shape) =>
        new(HostBuffer.Rent(checked(shape.ElementCount * type.SizeOf())), 0, type, shape, ownsBuffer: true);

    /// <summary>A tensor holding a copy of <paramref name="data"/>.</summary>
    public static HostTensor FromSpan<T>(ReadOnlySpan<T> data, Shape shape) where T : unmanaged
    {
        if (data.Length != shape.ElementCount)
            throw new ArgumentException($"{data.Length} elements do not fill shape {shape} ({shape.ElementCount}).", nameof(data));
        var tensor = Allocate(DTypes.Of<T>(), shape);
        data.CopyTo(tensor.AsSpan<T>());
        return tensor;
    }

    /// <summary>A view of bytes [offset, offset + size) of <paramref name="buffer"/>; the caller keeps owning the buffer.</summary>
    public static HostTensor View(HostBuffer buffer, long offset, DType type, Shape shape) => new(buffer, offset, type, shape, ownsBuffer: false);

    /// <summary>The elements as a span of <typeparamref name="T"/>, which must be the CLR type of <see cref="DType"/>.</summary>
    /// <exception cref="InvalidOperationException">The type does not match, the memory is read-only (mapped), or the tensor is larger than 2 GiB.</exception>
    public Span<T> AsSpan<T>() where T : unmanaged
    {
        if (!_buffer.IsWritable)
            throw new InvalidOperationException("tensor views read-only (memory-mapped) memory; use AsReadOnlySpan.");
        return Elements<T>();
    }

    /// <summary>Read-only elements (works for memory-mapped tensors too).</summary>
    public ReadOnlySpan<T> AsReadOnlySpan<T>() where T : unmanaged => Elements<T>();

    private Span<T> Elements<T>() where T : unmanaged
    {
        if (DTypes.Of<T>() != DType)
            throw new InvalidOperationException($"tensor holds {DType}, not {typeof(T).Name}.");
        if (ByteLength > int.MaxValue)
            throw new InvalidOperationException($"tensor of {ByteLength} bytes exceeds one span; take rows with Row().");
        return MemoryMarshal.Cast<byte, T>(_buffer.GetSpan(_offset, (int)ByteLength));
    }

    /// <summary>The raw bytes.</summary>
    public ReadOnlySpan<byte> Bytes => _buffer.GetSpan(_offset, checked((int)ByteLength));

    /// <summary>The raw bytes, writable.</summary>
    /// <exception cref="InvalidOperationException">The memory is read-only (memory-mapped).</exception>
    public Span<byte> WritableBytes => _buffer.IsWritable ? _buffer.GetSpan(_offset, checked((int)ByteLength))
        : throw new InvalidOperationException("tensor views read-only (memory-mapped) memory.");

    /// <summary>View of index <paramref name="index"/> along the first dimension.</summary>
    public HostTensor Row(int index)
    {
        if (Shape.Rank == 0) throw new InvalidOperationException("a scalar has no rows.");
        if ((uint)index >= (uint)Shape[0])
            throw new ArgumentOutOfRangeException(nameof(index), index, $"row of a tensor with shape {Shape}.");
        Shape inner = Shape.Inner;
        return new HostTensor(_buffer, _offset + index * inner.ElementCount * DType.SizeOf(), DType, inner, ownsBuffer: false);
    }

    /// <summary>View of rows [start, start + count) along the first dimension.</summary>
    public HostTensor Rows(int start, int count)
    {
        if (Shape.Rank == 0) throw new InvalidOperationException("a scalar has no rows.");
        if (start < 0 || count < 0 || start > Shape[0] - count)
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) of a tensor with shape {Shape}.");
        Span<int> dims = stackalloc int[Shape.Rank];
        Shape.Dims.CopyTo(dims);
        dims[0] = count;
        long rowBytes = Shape.Inner.ElementCount * DType.SizeOf();
        return new HostTensor(_buffer, _offset + start * rowBytes, DType, new Shape(dims), ownsBuffer: false);
    }

    /// <summary>View with another shape of the same element count.</summary>
    public HostTensor Reshape(Shape shape)
    {
        if (shape.ElementCount != Shape.ElementCount)
            throw new ArgumentException($"cannot reshape {Shape} ({Shape.ElementCount} elements) to {shape} ({shape.ElementCount}).", nameof(shape));
        return new HostTensor(_buffer, _offset, DType, shape, ownsBuffer: false);
    }

    /// <summary>Copies the elements, widened to F32, into <paramref name="destination"/>.</summary>
    public void CopyTo(Span<float> destination)
    {
        switch (DType)
        {
            case DType.F32: Numerics.Conversions.ToSingle<float>(AsReadOnlySpan<float>(), destination); break;
            case DType.F16: Numerics.Conversions.ToSingle<Half>(AsReadOnlySpan<Half>(), destination); break;
            case DType.BF16: Numerics.Conversions.ToSingle<BFloat16>(AsReadOnlySpan<BFloat16>(), destination); break;
            default: throw new InvalidOperationException($"{DType} tensors do not widen to F32.");
        }
    }

    /// <summary>Releases the buffer if this tensor owns it.</summary>
    public void Dispose()
    {
        if (_ownsBuffer) _buffer.Dispose();
    }
}
