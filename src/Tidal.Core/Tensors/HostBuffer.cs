using System.Buffers;
using System.IO.MemoryMappedFiles;

namespace Tidal.Core.Tensors;

/// <summary>Host memory that tensors view: rented from the shared pool, or a read-only memory-mapped file.</summary>
public abstract class HostBuffer : IDisposable
{
    /// <summary>Length in bytes.</summary>
    public abstract long Length { get; }

    /// <summary>True if the bytes may be written.</summary>
    public abstract bool IsWritable { get; }

    /// <summary>The bytes from <paramref name="offset"/>, <paramref name="length"/> long (at most 2 GiB per span).</summary>
    public abstract Span<byte> GetSpan(long offset, int length);

    /// <summary>Zeroed, writable memory rented from <see cref="ArrayPool{T}.Shared"/> and returned on dispose.</summary>
    public static HostBuffer Rent(long length) => new PooledHostBuffer(length);

    /// <summary>Maps <paramref name="path"/> read-only; the file stays open until dispose.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    public static HostBuffer Map(string path) => new MappedHostBuffer(path);

    /// <summary>Throws unless [offset, offset + length) lies inside the buffer.</summary>
    protected void CheckRange(long offset, long length)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (offset < 0 || length < 0 || offset > Length - length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"bytes [{offset}, {offset + length}) lie outside a buffer of {Length} bytes.");
    }

    /// <summary>True once disposed.</summary>
    protected bool IsDisposed { get; private set; }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>Gives the memory back.</summary>
    protected abstract void Release();

    private sealed class PooledHostBuffer : HostBuffer
    {
        private byte[]? _array;
        private readonly long _length;

        public PooledHostBuffer(long length)
        {
            if (length < 0 || length > Array.MaxLength)
                throw new ArgumentOutOfRangeException(nameof(length), length, $"a pooled host buffer holds 0..{Array.MaxLength} bytes.");
            _length = length;
            _array = ArrayPool<byte>.Shared.Rent((int)length);
            Array.Clear(_array, 0, (int)length);
        }

        public override long Length => _length;
        public override bool IsWritable => true;

        public override Span<byte> GetSpan(long offset, int length)
        {
            CheckRange(offset, length);
            return _array.AsSpan((int)offset, length);
        }

        protected override void Release()
        {
            ArrayPool<byte>.Shared.Return(_array!);
            _array = null;
        }
    }

    private sealed unsafe class MappedHostBuffer : HostBuffer
    {
        private readonly MemoryMappedFile _file;
        private readonly MemoryMappedViewAccessor _view;
        private readonly byte* _pointer;
        private readonly long _length;

        public MappedHostBuffer(string path)
        {
            _length = new FileInfo(path).Length;
            if (_length == 0) throw new InvalidDataException($"'{path}' is empty.");
            _file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            _view = _file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _pointer = p + _view.PointerOffset;
        }

        public override long Length => _length;
        public override bool IsWritable => false;

        public override Span<byte> GetSpan(long offset, int length)
        {
            CheckRange(offset, length);
            return new Span<byte>(_pointer + offset, length);
        }

        protected override void Release()
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _file.Dispose();
        }
    }
}
