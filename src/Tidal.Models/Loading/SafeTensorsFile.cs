using System.Text.Json;
using Tidal.Core;
using Tidal.Core.Tensors;

namespace Tidal.Models.Loading;

/// <summary>
/// A Hugging Face safetensors file, memory-mapped: an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and [begin, end) data offsets, then the data. Every header field is validated before use.
/// </summary>
public sealed class SafeTensorsFile : ITensorSource
{
    /// <summary>Largest header accepted: real headers are kilobytes; this bounds memory on hostile files.</summary>
    public const long MaxHeaderBytes = 100 << 20;

    private readonly HostBuffer _buffer;
    private readonly Dictionary<string, (DType Type, Shape Shape, long Offset)> _tensors = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal);

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    /// <exception cref="ModelFormatException">The file is truncated or its header is malformed or inconsistent.</exception>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    public SafeTensorsFile(string path)
    {
        Path = path;
        long length = new FileInfo(path).Exists ? new FileInfo(path).Length : throw new FileNotFoundException($"safetensors file '{path}' not found.", path);
        if (length < 8) throw new ModelFormatException($"{path}: {length} bytes is too short for a safetensors header length.");
        _buffer = HostBuffer.Map(path);
        try
        {
            long headerLength = BitConverter.ToInt64(_buffer.GetSpan(0, 8));
            if (headerLength <= 0 || headerLength > MaxHeaderBytes || headerLength > length - 8)
                throw new ModelFormatException($"{path}: header length {headerLength} does not fit a file of {length} bytes (truncated or not safetensors).");
            ParseHeader(_buffer.GetSpan(8, (int)headerLength), 8 + headerLength, length);
        }
        catch (Exception e) when (e is InvalidOperationException or JsonException or FormatException or ArgumentException or OverflowException or KeyNotFoundException)
        {
            _buffer.Dispose();
            throw new ModelFormatException($"{path}: malformed safetensors header ({e.Message}).", e);
        }
        catch
        {
            _buffer.Dispose();
            throw;
        }
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public IReadOnlyCollection<string> Names => _tensors.Keys;

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, string> Metadata => _metadata;

    /// <inheritdoc/>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>dtype and shape of <paramref name="name"/> as the header declares them.</summary>
    public (DType Type, Shape Shape) Describe(string name) =>
        _tensors.TryGetValue(name, out var t) ? (t.Type, t.Shape) : throw new ModelFormatException($"{Path}: tensor '{name}' is missing.");

    /// <inheritdoc/>
    public HostTensor Get(string name, Shape expected)
    {
        if (!_tensors.TryGetValue(name, out var t)) throw new ModelFormatException($"{Path}: tensor '{name}' is missing.");
        if (t.Shape != expected) throw new ModelFormatException($"{Path}: tensor '{name}' has shape {t.Shape}, but the config needs {expected}.");
        return HostTensor.View(_buffer, t.Offset, t.Type, t.Shape);
    }

    private void ParseHeader(ReadOnlySpan<byte> json, long dataStart, long fileLength)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(json.ToArray()); }
        catch (JsonException e) { throw new ModelFormatException($"{Path}: the header is not valid JSON ({e.Message}).", e); }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object) throw new ModelFormatException($"{Path}: the header is not a JSON object.");
            long dataLength = fileLength - dataStart;
            var ranges = new List<(long Begin, long End, string Name)>();
            foreach (JsonProperty entry in document.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__")
                {
                    if (entry.Value.ValueKind == JsonValueKind.Object)
                        foreach (JsonProperty m in entry.Value.EnumerateObject()) _metadata[m.Name] = m.Value.ToString();
                    continue;
                }
                (DType type, Shape shape, long begin, long end) = ParseEntry(entry);
                long bytes = checked(shape.ElementCount * type.SizeOf());
                if (begin < 0 || end < begin || end > dataLength)
                    throw new ModelFormatException($"{Path}: tensor '{entry.Name}' data [{begin}, {end}) lies outside the {dataLength} data bytes (file truncated?).");
                if (end - begin != bytes)
                    throw new ModelFormatException($"{Path}: tensor '{entry.Name}' spans {end - begin} bytes but {type} {shape} needs {bytes}.");
                ranges.Add((begin, end, entry.Name));
                _tensors[entry.Name] = (type, shape, dataStart + begin);
            }
            ranges.Sort((a, b) => a.Begin.CompareTo(b.Begin));
            for (int i = 1; i < ranges.Count; i++)
                if (ranges[i].Begin < ranges[i - 1].End)
                    throw new ModelFormatException($"{Path}: tensors '{ranges[i - 1].Name}' and '{ranges[i].Name}' overlap.");
        }
    }

    private (DType, Shape, long, long) ParseEntry(JsonProperty entry)
    {
        try
        {
            JsonElement e = entry.Value;
            string dtype = e.GetProperty("dtype").GetString() ?? "";
            DType type;
            try { type = DTypes.Parse(dtype); }
            catch (FormatException) { throw new ModelFormatException($"{Path}: tensor '{entry.Name}' has unsupported dtype '{dtype}' (supported: F32, F16, BF16)."); }
            if (type == DType.I32) throw new ModelFormatException($"{Path}: tensor '{entry.Name}' has dtype I32; weights must be F32, F16 or BF16.");
            int[] dims = e.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray();
            JsonElement[] offsets = e.GetProperty("data_offsets").EnumerateArray().ToArray();
            if (offsets.Length != 2) throw new ModelFormatException($"{Path}: tensor '{entry.Name}' data_offsets must hold two numbers.");
            return (type, new Shape(dims), offsets[0].GetInt64(), offsets[1].GetInt64());
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException or OverflowException)
        {
            throw new ModelFormatException($"{Path}: tensor '{entry.Name}' has a malformed header entry ({ex.Message}).", ex);
        }
    }

    /// <summary>Unmaps the file.</summary>
    public void Dispose() => _buffer.Dispose();
}
