using System.Text.Json;
using Tidal.Core.Tensors;

namespace Tidal.Models.Loading;

/// <summary>
/// The tensors of a model directory: one <c>model.safetensors</c>, or the shards that
/// <c>model.safetensors.index.json</c> maps each tensor to.
/// </summary>
public sealed class ShardedSafeTensors : ITensorSource
{
    private readonly Dictionary<string, SafeTensorsFile> _byTensor = new(StringComparer.Ordinal);
    private readonly List<SafeTensorsFile> _files = [];

    /// <summary>Opens the safetensors of <paramref name="directory"/>.</summary>
    /// <exception cref="ModelFormatException">No safetensors, a malformed index, or a shard that lacks a tensor the index puts in it.</exception>
    public ShardedSafeTensors(string directory)
    {
        string index = System.IO.Path.Combine(directory, "model.safetensors.index.json");
        string single = System.IO.Path.Combine(directory, "model.safetensors");
        try
        {
            if (File.Exists(index)) OpenIndexed(directory, index);
            else if (File.Exists(single)) Add(new SafeTensorsFile(single), null);
            else throw new ModelFormatException($"{directory}: neither model.safetensors nor model.safetensors.index.json exists.");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void OpenIndexed(string directory, string index)
    {
        Dictionary<string, string> map;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(index));
            map = doc.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? "");
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new ModelFormatException($"{index}: not a valid safetensors index ({e.Message}).", e);
        }
        foreach (var shard in map.GroupBy(p => p.Value))
        {
            if (shard.Key.Contains('/') || shard.Key.Contains('\\') || shard.Key.Length == 0)
                throw new ModelFormatException($"{index}: shard name '{shard.Key}' must be a file name in the model directory.");
            Add(new SafeTensorsFile(System.IO.Path.Combine(directory, shard.Key)), shard.Select(p => p.Key));
        }
    }

    private void Add(SafeTensorsFile file, IEnumerable<string>? names)
    {
        _files.Add(file);
        foreach (string name in names ?? file.Names)
        {
            if (!file.Contains(name)) throw new ModelFormatException($"{file.Path}: the index puts tensor '{name}' here, but the file lacks it.");
            _byTensor[name] = file;
        }
    }

    /// <inheritdoc/>
    public IReadOnlyCollection<string> Names => _byTensor.Keys;

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, string> Metadata => _files.Count > 0 ? _files[0].Metadata : new Dictionary<string, string>();

    /// <inheritdoc/>
    public bool Contains(string name) => _byTensor.ContainsKey(name);

    /// <inheritdoc/>
    public HostTensor Get(string name, Shape expected) =>
        _byTensor.TryGetValue(name, out var file) ? file.Get(name, expected) : throw new ModelFormatException($"tensor '{name}' is missing from the model's safetensors.");

    /// <summary>Unmaps every shard.</summary>
    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
    }
}
