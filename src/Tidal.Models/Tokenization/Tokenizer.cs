using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Tidal.Models.Loading;

namespace Tidal.Models.Tokenization;

/// <summary>
/// A BPE tokenizer read from a Hugging Face tokenizer.json: byte-level BPE (GPT-2 / Llama-3 style, including split
/// pre-tokenizers) and SentencePiece-style BPE with byte fallback (Llama-2 style). Encoding runs
/// added-token splitting → normalizer → pre-tokenizer → BPE merges by rank → post-processor (BOS).
/// </summary>
public sealed class Tokenizer
{
    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _tokens;
    private readonly Dictionary<(string, string), int> _mergeRanks;
    private readonly List<(string Content, int Id, bool Special)> _added;
    private readonly Func<string, string> _normalize;
    private readonly Func<string, IEnumerable<string>> _preTokenize;
    private readonly bool _byteLevel, _byteFallback, _ignoreMerges;
    private readonly int _stripStart;
    private readonly int[] _prefixIds;
    private readonly byte[][] _tokenBytes;
    private readonly Dictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    private Tokenizer(JsonElement root, string path)
    {
        JsonElement model = root.GetProperty("model");
        string type = model.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "BPE";
        if (type != "BPE") throw new ModelFormatException($"{path}: tokenizer model '{type}' is not supported (BPE only).");
        foreach (string unsupported in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (model.TryGetProperty(unsupported, out var u) && u.ValueKind == JsonValueKind.String && u.GetString() != "")
                throw new ModelFormatException($"{path}: BPE option '{unsupported}' is not supported.");
        _vocab = model.GetProperty("vocab").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32(), StringComparer.Ordinal);
        _byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;
        _ignoreMerges = model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True;
        _mergeRanks = new Dictionary<(string, string), int>();
        int rank = 0;
        foreach (JsonElement merge in model.GetProperty("merges").EnumerateArray())
        {
            (string a, string b) = merge.ValueKind == JsonValueKind.Array
                ? (merge[0].GetString()!, merge[1].GetString()!)
                : merge.GetString()!.Split(' ', 2) is [var x, var y] ? (x, y) : throw new ModelFormatException($"{path}: merge '{merge}' is not 'a b'.");
            _mergeRanks.TryAdd((a, b), rank++);
        }
        _added = root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array
            ? added.EnumerateArray().Select(a => (a.GetProperty("content").GetString()!, a.GetProperty("id").GetInt32(), a.TryGetProperty("special", out var s) && s.GetBoolean())).ToList()
            : [];
        foreach (var a in _added) _vocab.TryAdd(a.Content, a.Id);
        int size = _vocab.Values.Max() + 1;
        _tokens = new string[size];
        foreach ((string token, int id) in _vocab)
        {
            if (id < 0) throw new ModelFormatException($"{path}: token '{token}' has negative id {id}.");
            _tokens[id] = token;
        }
        _normalize = BuildNormalizer(root.TryGetProperty("normalizer", out var n) ? n : default, path);
        _preTokenize = BuildPreTokenizer(root.TryGetProperty("pre_tokenizer", out var p) ? p : default, path);
        JsonElement decoder = root.TryGetProperty("decoder", out var d) ? d : default;
        _byteLevel = Mentions(decoder, "ByteLevel") || Mentions(root.TryGetProperty("pre_tokenizer", out var pt) ? pt : default, "ByteLevel");
        _stripStart = FindStrip(decoder);
        _prefixIds = ReadPrefix(root.TryGetProperty("post_processor", out var pp) ? pp : default, path);
        _tokenBytes = _tokens.Select((tok, id) => tok is null ? [] : SpellBytes(tok, id)).ToArray();
    }

    /// <summary>Reads a tokenizer.json.</summary>
    /// <exception cref="ModelFormatException">Malformed JSON or an unsupported tokenizer component.</exception>
    public static Tokenizer FromFile(string path)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            return new Tokenizer(doc.RootElement, path);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException or RegexParseException)
        {
            throw new ModelFormatException($"{path}: not a supported tokenizer.json ({e.Message}).", e);
        }
    }

    /// <summary>Size of the id space (largest id + 1).</summary>
    public int VocabSize => _tokens.Length;

    /// <summary>The token string of <paramref name="id"/> as the vocabulary spells it.</summary>
    public string TokenString(int id) => (uint)id < (uint)_tokens.Length && _tokens[id] is { } s ? s : throw new ArgumentOutOfRangeException(nameof(id), id, "not a token id.");

    /// <summary>Id of a special or added token's content, e.g. "&lt;|end_of_text|&gt;", or null.</summary>
    public int? SpecialTokenId(string content) => _added.FirstOrDefault(a => a.Content == content) is { Content: not null } a ? a.Id : null;

    /// <summary>True for special (control) tokens such as BOS and EOS.</summary>
    public bool IsSpecial(int id) => _added.Any(a => a.Id == id && a.Special);

    /// <summary>Encodes <paramref name="text"/>; with <paramref name="addSpecialTokens"/> the post-processor's prefix (BOS) comes first.</summary>
    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        var ids = new List<int>();
        if (addSpecialTokens) ids.AddRange(_prefixIds);
        int start = 0;
        while (start < text.Length)
        {
            (int at, int id, int length) = NextAddedToken(text, start);
            if (at > start) EncodeSegment(text.Substring(start, at - start), ids);
            if (id < 0) break;
            ids.Add(id);
            start = at + length;
        }
        return ids.ToArray();
    }

    /// <summary>The bytes token <paramref name="id"/> stands for (what a streaming decoder feeds on).</summary>
    public ReadOnlySpan<byte> TokenBytes(int id) => (uint)id < (uint)_tokenBytes.Length ? _tokenBytes[id] : throw new ArgumentOutOfRangeException(nameof(id), id, "not a token id.");

    /// <summary>Decodes ids to text; special tokens are kept unless <paramref name="skipSpecialTokens"/>.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
            if (!(skipSpecialTokens && IsSpecial(id))) bytes.AddRange(TokenBytes(id).ToArray());
        string text = Encoding.UTF8.GetString(bytes.ToArray());
        int strip = 0;
        while (strip < _stripStart && strip < text.Length && text[strip] == ' ') strip++;
        return text.Substring(strip);
    }

    private (int At, int Id, int Length) NextAddedToken(string text, int start)
    {
        int bestAt = text.Length, bestId = -1, bestLength = 0;
        foreach (var (content, id, _) in _added)
        {
            if (content.Length == 0) continue;
            int at = text.IndexOf(content, start, StringComparison.Ordinal);
            if (at >= 0 && (at < bestAt || (at == bestAt && content.Length > bestLength))) (bestAt, bestId, bestLength) = (at, id, content.Length);
        }
        return (bestAt, bestId, bestLength);
    }

    private void EncodeSegment(string segment, List<int> ids)
    {
        foreach (string piece in _preTokenize(_normalize(segment)))
        {
            if (piece.Length == 0) continue;
            string word = _byteLevel ? ByteLevel.Encode(piece) : piece;
            if (!_cache.TryGetValue(word, out int[]? wordIds))
            {
                wordIds = Bpe(word);
                if (_cache.Count < 100_000) _cache[word] = wordIds;
            }
            ids.AddRange(wordIds);
        }
    }

    /// <summary>Merges the word's symbols, lowest merge rank first, then maps symbols to ids (bytes if unknown and byte fallback).</summary>
    private int[] Bpe(string word)
    {
        if (_ignoreMerges && _vocab.TryGetValue(word, out int whole)) return [whole];
        var symbols = new List<string>();
        TextElementEnumerator e = StringInfo.GetTextElementEnumerator(word);
        while (e.MoveNext()) symbols.AddRange(SplitSurrogateSafe(e.GetTextElement()));
        while (symbols.Count > 1)
        {
            int best = -1, bestRank = int.MaxValue;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (_mergeRanks.TryGetValue((symbols[i], symbols[i + 1]), out int r) && r < bestRank) (best, bestRank) = (i, r);
            if (best < 0) break;
            symbols[best] += symbols[best + 1];
            symbols.RemoveAt(best + 1);
        }
        var result = new List<int>(symbols.Count);
        foreach (string s in symbols)
        {
            if (_vocab.TryGetValue(s, out int id)) result.Add(id);
            else if (_byteFallback)
                foreach (byte b in Encoding.UTF8.GetBytes(s))
                    result.Add(_vocab.TryGetValue($"<0x{b:X2}>", out int bid) ? bid : throw new InvalidOperationException($"byte fallback token <0x{b:X2}> is missing from the vocabulary."));
            else throw new InvalidOperationException($"symbol '{s}' is not in the vocabulary and the tokenizer has no byte fallback.");
        }
        return result.ToArray();
    }

    /// <summary>BPE works on Unicode scalar values; a grapheme cluster of several is split back into them.</summary>
    private static IEnumerable<string> SplitSurrogateSafe(string element)
    {
        for (int i = 0; i < element.Length; i += char.IsSurrogatePair(element, i) ? 2 : 1)
            yield return element.Substring(i, char.IsSurrogatePair(element, i) ? 2 : 1);
    }

    private byte[] SpellBytes(string token, int id)
    {
        if (_added.Any(a => a.Id == id)) return Encoding.UTF8.GetBytes(token);
        if (_byteLevel)
        {
            var bytes = new byte[token.Length];
            for (int i = 0; i < token.Length; i++)
            {
                if (!ByteLevel.CharToByte.TryGetValue(token[i], out bytes[i])) return Encoding.UTF8.GetBytes(token);
            }
            return bytes;
        }
        if (_byteFallback && token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token.EndsWith('>')
            && byte.TryParse(token.AsSpan(3, 2), NumberStyles.HexNumber, null, out byte single))
            return [single];
        return Encoding.UTF8.GetBytes(token.Replace('\u2581', ' '));
    }

    private static Func<string, string> BuildNormalizer(JsonElement n, string path)
    {
        if (n.ValueKind != JsonValueKind.Object) return s => s;
        string type = n.GetProperty("type").GetString()!;
        switch (type)
        {
            case "Sequence":
                var parts = n.GetProperty("normalizers").EnumerateArray().Select(x => BuildNormalizer(x, path)).ToList();
                return s => parts.Aggregate(s, (acc, f) => f(acc));
            case "Prepend":
                string prefix = n.GetProperty("prepend").GetString()!;
                return s => s.Length == 0 ? s : prefix + s;
            case "Replace":
                (Regex pattern, string content) = (Pattern(n.GetProperty("pattern")), n.GetProperty("content").GetString()!);
                return s => pattern.Replace(s, content.Replace("$", "$$"));
            case "NFC": return s => s.Normalize(NormalizationForm.FormC);
            case "NFKC": return s => s.Normalize(NormalizationForm.FormKC);
            default: throw new ModelFormatException($"{path}: normalizer '{type}' is not supported.");
        }
    }

    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static Func<string, IEnumerable<string>> BuildPreTokenizer(JsonElement p, string path)
    {
        if (p.ValueKind != JsonValueKind.Object) return s => [s];
        string type = p.GetProperty("type").GetString()!;
        switch (type)
        {
            case "Sequence":
                var parts = p.GetProperty("pretokenizers").EnumerateArray().Select(x => BuildPreTokenizer(x, path)).ToList();
                return s => parts.Aggregate((IEnumerable<string>)[s], (pieces, f) => pieces.SelectMany(f).ToList());
            case "Split":
                if (p.TryGetProperty("invert", out var inv) && inv.GetBoolean()) throw new ModelFormatException($"{path}: inverted Split pre-tokenizers are not supported.");
                Regex regex = Pattern(p.GetProperty("pattern"));
                string behavior = p.GetProperty("behavior").GetString()!;
                return s => Split(s, regex, behavior, path);
            case "ByteLevel":
                bool prefix = p.TryGetProperty("add_prefix_space", out var aps) && aps.GetBoolean();
                bool useRegex = !p.TryGetProperty("use_regex", out var ur) || ur.GetBoolean();
                var gpt2 = new Regex(Gpt2Pattern, RegexOptions.Compiled);
                return s =>
                {
                    string t = prefix && !s.StartsWith(' ') ? " " + s : s;
                    return useRegex ? Split(t, gpt2, "Isolated", path) : [t];
                };
            case "Metaspace":
                string replacement = p.TryGetProperty("replacement", out var r) ? r.GetString()! : "\u2581";
                string scheme = p.TryGetProperty("prepend_scheme", out var ps) ? ps.GetString()! : p.TryGetProperty("add_prefix_space", out var a) && !a.GetBoolean() ? "never" : "always";
                bool split = !p.TryGetProperty("split", out var sp) || sp.GetBoolean();
                var marker = new Regex(Regex.Escape(replacement));
                return s =>
                {
                    string t = s.Replace(" ", replacement);
                    if (scheme != "never" && !t.StartsWith(replacement, StringComparison.Ordinal)) t = replacement + t;
                    return split ? Split(t, marker, "MergedWithNext", path) : [t];
                };
            case "Digits":
                bool individual = p.TryGetProperty("individual_digits", out var id) && id.GetBoolean();
                var digits = new Regex(individual ? @"\p{Nd}" : @"\p{Nd}+");
                return s => Split(s, digits, "Isolated", path);
            default: throw new ModelFormatException($"{path}: pre-tokenizer '{type}' is not supported.");
        }
    }

    private static Regex Pattern(JsonElement pattern) =>
        pattern.TryGetProperty("Regex", out var re) ? new Regex(re.GetString()!, RegexOptions.Compiled)
        : new Regex(Regex.Escape(pattern.GetProperty("String").GetString()!));

    private static List<string> Split(string s, Regex regex, string behavior, string path)
    {
        var pieces = new List<string>();
        int last = 0;
        string? pendingMatch = null;
        foreach (Match m in regex.Matches(s))
        {
            if (m.Length == 0) continue;
            string gap = s.Substring(last, m.Index - last);
            switch (behavior)
            {
                case "Isolated":
                    if (gap.Length > 0) pieces.Add(gap);
                    pieces.Add(m.Value);
                    break;
                case "Removed":
                    if (gap.Length > 0) pieces.Add(gap);
                    break;
                case "MergedWithPrevious":
                    if (gap.Length > 0 || pieces.Count == 0) pieces.Add(gap + m.Value);
                    else pieces[^1] += m.Value;
                    break;
                case "MergedWithNext":
                    if (pendingMatch is not null || gap.Length > 0) pieces.Add((pendingMatch ?? "") + gap);
                    pendingMatch = m.Value;
                    break;
                default: throw new ModelFormatException($"{path}: Split behavior '{behavior}' is not supported.");
            }
            last = m.Index + m.Length;
        }
        string tail = s.Substring(last);
        if (pendingMatch is not null) pieces.Add(pendingMatch + tail);
        else if (tail.Length > 0) pieces.Add(tail);
        pieces.RemoveAll(x => x.Length == 0);
        return pieces;
    }

    private static bool Mentions(JsonElement e, string type) =>
        e.ValueKind == JsonValueKind.Object && (e.TryGetProperty("type", out var t) && t.GetString() == type
            || e.EnumerateObject().Any(p => p.Value.ValueKind == JsonValueKind.Array && p.Value.EnumerateArray().Any(x => Mentions(x, type))));

    private static int FindStrip(JsonElement decoder)
    {
        if (decoder.ValueKind != JsonValueKind.Object) return 0;
        string type = decoder.GetProperty("type").GetString()!;
        if (type == "Strip" && decoder.TryGetProperty("start", out var s)) return s.GetInt32();
        if (type == "Metaspace") return 1;
        if (type == "Sequence") return decoder.GetProperty("decoders").EnumerateArray().Select(FindStrip).DefaultIfEmpty(0).Max();
        return 0;
    }

    private int[] ReadPrefix(JsonElement post, string path)
    {
        if (post.ValueKind != JsonValueKind.Object) return [];
        string type = post.GetProperty("type").GetString()!;
        if (type == "Sequence") return post.GetProperty("processors").EnumerateArray().SelectMany(x => ReadPrefix(x, path)).ToArray();
        if (type == "ByteLevel") return [];
        if (type != "TemplateProcessing") throw new ModelFormatException($"{path}: post-processor '{type}' is not supported.");
        var prefix = new List<int>();
        foreach (JsonElement item in post.GetProperty("single").EnumerateArray())
        {
            if (item.TryGetProperty("Sequence", out _)) break;
            string special = item.GetProperty("SpecialToken").GetProperty("id").GetString()!;
            prefix.AddRange(post.GetProperty("special_tokens").GetProperty(special).GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()));
        }
        return prefix.ToArray();
    }
}
