using Tidal.Core.Backends;

namespace Tidal.Models.Engine;

/// <summary>The backend tensors an object allocated, freed together when it is disposed.</summary>
internal sealed class OwnedTensors : IDisposable
{
    private readonly List<ITensor> _tensors = [];

    /// <summary>Takes ownership of <paramref name="tensor"/> and returns it.</summary>
    public ITensor Own(ITensor tensor)
    {
        _tensors.Add(tensor);
        return tensor;
    }

    /// <summary>Frees every owned tensor.</summary>
    public void Dispose()
    {
        foreach (var t in _tensors) t.Dispose();
        _tensors.Clear();
    }
}
