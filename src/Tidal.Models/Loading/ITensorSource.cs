using Tidal.Core;
using Tidal.Core.Tensors;

namespace Tidal.Models.Loading;

/// <summary>Named tensors read from model files (safetensors, GGUF), memory-mapped until disposed.</summary>
public interface ITensorSource : IDisposable
{
    /// <summary>Every tensor name.</summary>
    IReadOnlyCollection<string> Names { get; }

    /// <summary>True if the source holds <paramref name="name"/>.</summary>
    bool Contains(string name);

    /// <summary>
    /// The tensor <paramref name="name"/>, checked against the expected dtypes and shape.
    /// </summary>
    /// <exception cref="ModelFormatException">Missing, or of another shape or an unexpected dtype.</exception>
    HostTensor Get(string name, Shape expected);

    /// <summary>Metadata key/values the file carries (safetensors __metadata__, GGUF key/values as text).</summary>
    IReadOnlyDictionary<string, string> Metadata { get; }
}
