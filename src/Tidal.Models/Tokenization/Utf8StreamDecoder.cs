using System.Text;

namespace Tidal.Models.Tokenization;

/// <summary>
/// Turns a stream of token bytes into text without ever emitting a broken multi-byte character: bytes of a character
/// split across tokens are held back until the character is complete.
/// </summary>
public sealed class Utf8StreamDecoder
{
    private readonly Decoder _decoder = new UTF8Encoding(false, false).GetDecoder();
    private readonly char[] _chars = new char[64];

    /// <summary>Feeds bytes; returns the text completed by them (possibly empty).</summary>
    public string Push(ReadOnlySpan<byte> bytes)
    {
        var text = new StringBuilder();
        while (!bytes.IsEmpty)
        {
            _decoder.Convert(bytes, _chars, flush: false, out int used, out int produced, out _);
            text.Append(_chars, 0, produced);
            bytes = bytes.Slice(used);
        }
        return text.ToString();
    }

    /// <summary>Ends the stream: an incomplete trailing character becomes U+FFFD.</summary>
    public string Flush()
    {
        _decoder.Convert(ReadOnlySpan<byte>.Empty, _chars, flush: true, out _, out int produced, out _);
        return new string(_chars, 0, produced);
    }
}
