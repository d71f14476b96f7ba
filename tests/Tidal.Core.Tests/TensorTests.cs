using Tidal.Core.Tensors;

namespace Tidal.Core.Tests;

public class TensorTests
{
    [Fact]
    public void Shape_HasRowMajorStrides_AndRejectsNegativeDims()
    {
        var shape = new Shape(2, 3, 4);
        Assert.Equal(24, shape.ElementCount);
        Assert.Equal(12, shape.Stride(0));
        Assert.Equal(4, shape.Stride(1));
        Assert.Equal(1, shape.Stride(2));
        Assert.Equal(new Shape(3, 4), shape.Inner);
        Assert.Equal("[2, 3, 4]", shape.ToString());
        Assert.Equal("dims", Assert.Throws<ArgumentException>(() => new Shape(2, -1)).ParamName);
    }

    [Fact]
    public void PooledTensor_RowsAndReshapesShareMemory()
    {
        using var t = HostTensor.FromSpan<float>(Enumerable.Range(0, 12).Select(i => (float)i).ToArray(), new Shape(3, 4));
        HostTensor row = t.Row(1);
        Assert.Equal([4f, 5f, 6f, 7f], row.AsSpan<float>().ToArray());
        row.AsSpan<float>()[0] = 40f;
        Assert.Equal(40f, t.Reshape(new Shape(12)).AsSpan<float>()[4]);
        Assert.Throws<InvalidOperationException>(() => t.AsSpan<Half>());
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Row(3));
        Assert.Equal("shape", Assert.Throws<ArgumentException>(() => t.Reshape(new Shape(5))).ParamName);
    }

    [Fact]
    public void MappedTensor_ReadsTheFile_AndIsReadOnly()
    {
        string path = Path.GetTempFileName();
        try
        {
            Half[] values = [(Half)1.5f, (Half)(-2f), (Half)3.25f, (Half)0f];
            File.WriteAllBytes(path, [0xFF, 0xFF, .. System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray()]);
            using var buffer = HostBuffer.Map(path);
            var t = HostTensor.View(buffer, 2, DType.F16, new Shape(2, 2));
            var widened = new float[4];
            t.CopyTo(widened);
            Assert.Equal([1.5f, -2f, 3.25f, 0f], widened);
            Assert.Throws<InvalidOperationException>(() => t.AsSpan<Half>());
            Assert.Throws<ArgumentOutOfRangeException>(() => HostTensor.View(buffer, 4, DType.F16, new Shape(2, 2)));
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void DTypes_ParseAndSize()
    {
        Assert.Equal(DType.BF16, DTypes.Parse("bf16"));
        Assert.Equal(2, DType.F16.SizeOf());
        Assert.Equal(DType.BF16, DTypes.Of<BFloat16>());
        Assert.Contains("I8", Assert.Throws<FormatException>(() => DTypes.Parse("I8")).Message);
    }
}
