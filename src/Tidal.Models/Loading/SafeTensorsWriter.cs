using System.Text;
using System.Text.Json;
using Tidal.Core;
using Tidal.Core.Tensors;

namespace Tidal.Models.Loading;

/// <summary>Writes tensors as one safetensors file (tests build small synthetic models with it).</summary>
public static class SafeTensorsWriter
{
    /// <summary>Writes <paramref name="tensors"/> in the given order, each 8-byte aligned as the format recommends.</summary>
    public static void Write(string path, IEnumerable<(string Name, HostTensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        foreach ((string name, HostTensor t) in list)
        {
            header[name] = new { dtype = t.DType.ToString(), shape = t.Shape.Dims.ToArray(), data_offsets = new[] { offset, offset + t.ByteLength } };
            offset += t.ByteLength;
        }
        byte[] json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        int padded = (json.Length + 7) / 8 * 8;
        using var stream = File.Create(path);
        stream.Write(BitConverter.GetBytes((long)padded));
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach ((_, HostTensor t) in list) stream.Write(t.Bytes);
    }
}
