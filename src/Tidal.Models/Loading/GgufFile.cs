using System.Buffers.Binary;
using System.Text;
using Tidal.Core;
using Tidal.Core.Tensors;
using Tidal.Models.Config;

namespace Tidal.Models.Loading;

/// <summary>
/// A GGUF v3 file (llama.cpp's format), memory-mapped, holding F32, F16 or BF16 tensors. It presents its tensors under
/// Hugging Face names with the Q/K rows put back in HF's half-split RoPE order, so one engine path serves both formats.
/// </summary>
public sealed class GgufFile : ITensorSource
{
    /// <summary>"GGUF" read as a little-endian uint.</summary>
    public const uint Magic = 0x46554747;
    private const int DefaultAlignment = 32;

    private readonly HostBuffer _buffer;
    private readonly Dictionary<string, (DType Type, Shape Shape, long Offset)> _tensors = new(StringComparer.Ordinal);
    private readonly Dictionary<string, object> _values = new(StringComparer.Ordinal);
    private readonly List<HostTensor> _unpermuted = [];

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    /// <exception cref="ModelFormatException">Truncated, not GGUF v3, or with inconsistent or unsupported tensors.</exception>
    public GgufFile(string path)
    {
        Path = path;
        if (!File.Exists(path)) throw new FileNotFoundException($"GGUF file '{path}' not found.", path);
        _buffer = HostBuffer.Map(path);
        try { Parse(); }
        catch (Exception e) when (e is OverflowException or ArgumentException or InvalidCastException or InvalidOperationException)
        {
            _buffer.Dispose();
            throw new ModelFormatException($"{path}: malformed GGUF ({e.Message}).", e);
        }
        catch
        {
            _buffer.Dispose();
            throw;
        }
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>Metadata values: string, bool, long, double, or arrays of them.</summary>
    public IReadOnlyDictionary<string, object> Values => _values;

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, string> Metadata => _values.ToDictionary(p => p.Key, p => p.Value is Array a ? $"[{a.Length} items]" : Convert.ToString(p.Value, System.Globalization.CultureInfo.InvariantCulture) ?? "");

    /// <inheritdoc/>
    public IReadOnlyCollection<string> Names => _tensors.Keys.Select(ToHuggingFaceName).Where(n => n is not null).Select(n => n!).ToList();

    /// <inheritdoc/>
    public bool Contains(string name) => FromHuggingFaceName(name) is { } g && _tensors.ContainsKey(g);

    /// <summary>The Llama config the metadata describes.</summary>
    /// <exception cref="ModelFormatException">Not a llama model, or a required key is missing.</exception>
    public LlamaConfig ReadConfig()
    {
        string arch = _values.TryGetValue("general.architecture", out var a) ? a as string ?? "" : "";
        if (arch != "llama") throw new ModelFormatException($"{Path}: architecture '{arch}' is not supported (llama).");
        int heads = Int("llama.attention.head_count"), hidden = Int("llama.embedding_length");
        (_, Shape embed, _) = _tensors.TryGetValue("token_embd.weight", out var e) ? e : throw new ModelFormatException($"{Path}: tensor 'token_embd.weight' is missing.");
        var config = new LlamaConfig
        {
            VocabSize = embed[0],
            HiddenSize = hidden,
            IntermediateSize = Int("llama.feed_forward_length"),
            Layers = Int("llama.block_count"),
            Heads = heads,
            KvHeads = _values.ContainsKey("llama.attention.head_count_kv") ? Int("llama.attention.head_count_kv") : heads,
            HeadDim = _values.ContainsKey("llama.attention.key_length") ? Int("llama.attention.key_length") : hidden / heads,
            RmsNormEps = (float)Double("llama.attention.layer_norm_rms_epsilon", 1e-5),
            RopeTheta = (float)Double("llama.rope.freq_base", 10000),
            RopeDivisors = ReadRopeDivisors(hidden / heads),
            TiedEmbeddings = !_tensors.ContainsKey("output.weight"),
            MaxPositions = Int("llama.context_length"),
            BosTokenId = _values.ContainsKey("tokenizer.ggml.bos_token_id") ? Int("tokenizer.ggml.bos_token_id") : 1,
            EosTokenIds = _values.ContainsKey("tokenizer.ggml.eos_token_id") ? [Int("tokenizer.ggml.eos_token_id")] : [2],
        };
        config.Validate(Path);
        return config;
    }

    /// <summary>llama.cpp's rope_freqs: F32 [d/2] divisors of the inverse frequencies (Llama-3.1 scaling), or null.</summary>
    private float[]? ReadRopeDivisors(int headDim)
    {
        if (!_tensors.TryGetValue("rope_freqs.weight", out var t)) return null;
        int dim = _values.ContainsKey("llama.attention.key_length") ? Int("llama.attention.key_length") : headDim;
        if (t.Type != DType.F32 || t.Shape != new Shape(dim / 2))
            throw new ModelFormatException($"{Path}: rope_freqs.weight is {t.Type} {t.Shape}, expected F32 [{dim / 2}].");
        return HostTensor.View(_buffer, t.Offset, t.Type, t.Shape).AsReadOnlySpan<float>().ToArray();
    }

    /// <inheritdoc/>
    public HostTensor Get(string name, Shape expected)
    {
        string g = FromHuggingFaceName(name) ?? throw new ModelFormatException($"{Path}: no GGUF tensor corresponds to '{name}'.");
        if (!_tensors.TryGetValue(g, out var t)) throw new ModelFormatException($"{Path}: tensor '{g}' (for '{name}') is missing.");
        if (t.Shape != expected) throw new ModelFormatException($"{Path}: tensor '{g}' has shape {t.Shape}, but the config needs {expected}.");
        HostTensor view = HostTensor.View(_buffer, t.Offset, t.Type, t.Shape);
        int heads = g.EndsWith("attn_q.weight", StringComparison.Ordinal) ? Int("llama.attention.head_count")
            : g.EndsWith("attn_k.weight", StringComparison.Ordinal) ? (_values.ContainsKey("llama.attention.head_count_kv") ? Int("llama.attention.head_count_kv") : Int("llama.attention.head_count"))
            : 0;
        if (heads == 0) return view;
        HostTensor hf = RopeRows.ToHalfSplit(view, heads);
        _unpermuted.Add(hf);
        return hf;
    }

    /// <summary>Hugging Face and llama.cpp names: whole-model tensors, then per-layer suffixes (model.layers.N.* ↔ blk.N.*).</summary>
    private static readonly (string Hf, string Gguf)[] ModelNames =
    [
        ("model.embed_tokens.weight", "token_embd.weight"), ("model.norm.weight", "output_norm.weight"), ("lm_head.weight", "output.weight"),
    ];

    private static readonly (string Hf, string Gguf)[] LayerNames =
    [
        ("input_layernorm.weight", "attn_norm.weight"), ("self_attn.q_proj.weight", "attn_q.weight"), ("self_attn.k_proj.weight", "attn_k.weight"),
        ("self_attn.v_proj.weight", "attn_v.weight"), ("self_attn.o_proj.weight", "attn_output.weight"), ("post_attention_layernorm.weight", "ffn_norm.weight"),
        ("mlp.gate_proj.weight", "ffn_gate.weight"), ("mlp.up_proj.weight", "ffn_up.weight"), ("mlp.down_proj.weight", "ffn_down.weight"),
    ];

    /// <summary>llama.cpp's tensor name for a Hugging Face Llama tensor name.</summary>
    public static string? FromHuggingFaceName(string name) => Translate(name, "model.layers.", "blk.", toGguf: true);

    private static string? ToHuggingFaceName(string gguf) => Translate(gguf, "blk.", "model.layers.", toGguf: false);

    private static string? Translate(string name, string fromLayers, string toLayers, bool toGguf)
    {
        foreach (var (hf, gguf) in ModelNames)
            if ((toGguf ? hf : gguf) == name) return toGguf ? gguf : hf;
        if (!name.StartsWith(fromLayers, StringComparison.Ordinal)) return null;
        string rest = name[fromLayers.Length..];
        int dot = rest.IndexOf('.');
        if (dot <= 0 || !int.TryParse(rest.AsSpan(0, dot), out int layer)) return null;
        string suffix = rest[(dot + 1)..];
        foreach (var (hf, gguf) in LayerNames)
            if ((toGguf ? hf : gguf) == suffix) return $"{toLayers}{layer}.{(toGguf ? gguf : hf)}";
        return null;
    }

    private int Int(string key) => _values.TryGetValue(key, out var v) && v is long l
        ? l is >= int.MinValue and <= int.MaxValue ? (int)l : throw new ModelFormatException($"{Path}: metadata key '{key}' = {l} does not fit a 32-bit integer.")
        : throw new ModelFormatException($"{Path}: metadata key '{key}' is missing or not an integer.");

    private double Double(string key, double fallback) => _values.TryGetValue(key, out var v) ? v switch
    {
        double d => d,
        long l => l,
        _ => throw new ModelFormatException($"{Path}: metadata key '{key}' is not a number."),
    } : fallback;

    private void Parse()
    {
        var r = new Reader(_buffer, Path);
        if (r.U32() != Magic) throw new ModelFormatException($"{Path}: not a GGUF file (bad magic).");
        uint version = r.U32();
        if (version != 3) throw new ModelFormatException($"{Path}: GGUF version {version} is not supported (3).");
        long tensorCount = r.Count("tensor count", 8 + 4 + 8 + 8);
        long kvCount = r.Count("metadata count", 8 + 4);
        for (long i = 0; i < kvCount; i++)
        {
            string key = r.String();
            _values[key] = r.Value(r.U32(), key);
        }
        int alignment = _values.TryGetValue("general.alignment", out var al) && al is long alv ? (int)alv : DefaultAlignment;
        if (alignment <= 0 || (alignment & (alignment - 1)) != 0) throw new ModelFormatException($"{Path}: general.alignment {alignment} is not a power of two.");
        var infos = new List<(string Name, DType Type, Shape Shape, long Offset)>();
        for (long i = 0; i < tensorCount; i++)
        {
            string name = r.String();
            uint dims = r.U32();
            if (dims is 0 or > 4) throw new ModelFormatException($"{Path}: tensor '{name}' has {dims} dimensions (1..4 supported).");
            var shape = new int[dims];
            for (int d = 0; d < dims; d++)
            {
                ulong n = r.U64();
                if (n == 0 || n > int.MaxValue) throw new ModelFormatException($"{Path}: tensor '{name}' dimension {d} is {n}.");
                shape[dims - 1 - d] = (int)n; // GGUF lists the fastest-varying dimension first
            }
            uint type = r.U32();
            DType dtype = type switch
            {
                0 => DType.F32,
                1 => DType.F16,
                30 => DType.BF16,
                _ => throw new ModelFormatException($"{Path}: tensor '{name}' has ggml type {type}; only F32 (0), F16 (1) and BF16 (30) are supported."),
            };
            infos.Add((name, dtype, new Shape(shape), (long)r.U64()));
        }
        long dataStart = (r.Position + alignment - 1) / alignment * alignment;
        long dataLength = _buffer.Length - dataStart;
        var ranges = new List<(long Begin, long End, string Name)>();
        foreach (var (name, type, shape, offset) in infos)
        {
            long bytes = checked(shape.ElementCount * type.SizeOf());
            if (offset < 0 || offset % alignment != 0 || offset > dataLength - bytes)
                throw new ModelFormatException($"{Path}: tensor '{name}' data [{offset}, {offset + bytes}) lies outside the {Math.Max(0, dataLength)} data bytes or is misaligned (file truncated?).");
            if (!_tensors.TryAdd(name, (type, shape, dataStart + offset))) throw new ModelFormatException($"{Path}: tensor '{name}' appears twice.");
            ranges.Add((offset, offset + bytes, name));
        }
        ranges.Sort((a, b) => a.Begin.CompareTo(b.Begin));
        for (int i = 1; i < ranges.Count; i++)
            if (ranges[i].Begin < ranges[i - 1].End) throw new ModelFormatException($"{Path}: tensors '{ranges[i - 1].Name}' and '{ranges[i].Name}' overlap.");
    }

    /// <summary>Reads little-endian values with a bounds check on every read, so a hostile length never over-reads or over-allocates.</summary>
    private sealed class Reader(HostBuffer buffer, string path)
    {
        public long Position { get; private set; }

        private ReadOnlySpan<byte> Take(long n)
        {
            if (n < 0 || n > buffer.Length - Position || n > int.MaxValue) throw new ModelFormatException($"{path}: unexpected end of file at byte {Position} (needed {n} more bytes; truncated?).");
            ReadOnlySpan<byte> span = buffer.GetSpan(Position, (int)n);
            Position += n;
            return span;
        }

        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

        /// <summary>A count whose items take at least <paramref name="minBytes"/> each: larger than the rest of the file is malformed.</summary>
        public long Count(string what, long minBytes)
        {
            ulong n = U64();
            if (n > (ulong)((buffer.Length - Position) / minBytes)) throw new ModelFormatException($"{path}: {what} {n} cannot fit the file's {buffer.Length} bytes.");
            return (long)n;
        }

        public string String()
        {
            ulong n = U64();
            if (n > 1 << 20) throw new ModelFormatException($"{path}: a string of {n} bytes at byte {Position - 8} is implausible.");
            return Encoding.UTF8.GetString(Take((long)n));
        }

        public object Value(uint type, string key) => type switch
        {
            0 => (long)Take(1)[0],
            1 => (long)(sbyte)Take(1)[0],
            2 => (long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2)),
            3 => (long)BinaryPrimitives.ReadInt16LittleEndian(Take(2)),
            4 => (long)U32(),
            5 => (long)BinaryPrimitives.ReadInt32LittleEndian(Take(4)),
            6 => (double)BinaryPrimitives.ReadSingleLittleEndian(Take(4)),
            7 => Take(1)[0] != 0,
            8 => String(),
            9 => Array(key),
            10 => (long)U64(),
            11 => BinaryPrimitives.ReadInt64LittleEndian(Take(8)),
            12 => BinaryPrimitives.ReadDoubleLittleEndian(Take(8)),
            _ => throw new ModelFormatException($"{path}: metadata '{key}' has unknown value type {type}."),
        };

        private object[] Array(string key)
        {
            uint type = U32();
            long count = Count($"array length of '{key}'", 1);
            var items = new object[count];
            for (long i = 0; i < count; i++) items[i] = Value(type, key);
            return items;
        }
    }

    /// <summary>Unmaps the file and frees un-permuted copies.</summary>
    public void Dispose()
    {
        foreach (var t in _unpermuted) t.Dispose();
        _unpermuted.Clear();
        _buffer.Dispose();
    }
}
