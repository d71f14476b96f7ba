namespace Tidal.Models.Loading;

/// <summary>
/// A model, config or tokenizer file is malformed or does not fit its configuration: truncated, a bad header,
/// offsets outside the file, overlapping tensors, a wrong shape or dtype, or a missing tensor. The message names the
/// file and the tensor or field at fault.
/// </summary>
public sealed class ModelFormatException : Exception
{
    /// <summary>Creates the exception with a message naming the problem.</summary>
    public ModelFormatException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and the error that revealed the problem.</summary>
    public ModelFormatException(string message, Exception inner) : base(message, inner) { }
}
