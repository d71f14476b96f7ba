using System.Text.Json;
using Tidal.Core.Reference;
using Tidal.Models.Loading;

namespace Tidal.Models.Config;

/// <summary>The shape and constants of a Llama-family decoder (Llama-2, Llama-3, Llama-3.1; GQA; tied or untied embeddings).</summary>
public sealed record LlamaConfig
{
    /// <summary>Tokens in the vocabulary.</summary>
    public required int VocabSize { get; init; }
    /// <summary>Model width (residual stream size).</summary>
    public required int HiddenSize { get; init; }
    /// <summary>SwiGLU hidden size.</summary>
    public required int IntermediateSize { get; init; }
    /// <summary>Decoder layers.</summary>
    public required int Layers { get; init; }
    /// <summary>Query heads.</summary>
    public required int Heads { get; init; }
    /// <summary>Key/value heads (GQA: Heads is a multiple of it).</summary>
    public required int KvHeads { get; init; }
    /// <summary>Head dimension d.</summary>
    public required int HeadDim { get; init; }
    /// <summary>RMSNorm epsilon.</summary>
    public float RmsNormEps { get; init; } = 1e-5f;
    /// <summary>RoPE base θ.</summary>
    public float RopeTheta { get; init; } = 10000f;
    /// <summary>Llama-3.1 RoPE frequency scaling, if any.</summary>
    public RopeScaling? RopeScaling { get; init; }
    /// <summary>Per-frequency RoPE divisors from a GGUF rope_freqs tensor (llama.cpp's form of Llama-3.1 scaling), if any.</summary>
    public IReadOnlyList<float>? RopeDivisors { get; init; }
    /// <summary>True if the output projection is the embedding table.</summary>
    public bool TiedEmbeddings { get; init; }
    /// <summary>Longest context the model was trained for.</summary>
    public int MaxPositions { get; init; } = 4096;
    /// <summary>Beginning-of-sequence token.</summary>
    public int BosTokenId { get; init; } = 1;
    /// <summary>Tokens that end generation.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [2];

    /// <summary>Query heads per KV head.</summary>
    public int GroupSize => Heads / KvHeads;

    /// <summary>Named shapes for benchmarks on random weights.</summary>
    public static LlamaConfig Preset(string name) => name.ToLowerInvariant() switch
    {
        "llama-2-7b" => new() { VocabSize = 32000, HiddenSize = 4096, IntermediateSize = 11008, Layers = 32, Heads = 32, KvHeads = 32, HeadDim = 128, MaxPositions = 4096 },
        "llama-3-8b" => new() { VocabSize = 128256, HiddenSize = 4096, IntermediateSize = 14336, Layers = 32, Heads = 32, KvHeads = 8, HeadDim = 128, RopeTheta = 500000f, MaxPositions = 8192, BosTokenId = 128000, EosTokenIds = [128001, 128009] },
        "llama-3.1-8b" => new() { VocabSize = 128256, HiddenSize = 4096, IntermediateSize = 14336, Layers = 32, Heads = 32, KvHeads = 8, HeadDim = 128, RopeTheta = 500000f, RopeScaling = new RopeScaling(8f, 1f, 4f, 8192), MaxPositions = 131072, BosTokenId = 128000, EosTokenIds = [128001, 128008, 128009] },
        "tiny" or "tidal-tiny" => new() { VocabSize = 4096, HiddenSize = 256, IntermediateSize = 768, Layers = 12, Heads = 4, KvHeads = 2, HeadDim = 64, RopeTheta = 500000f, TiedEmbeddings = true, MaxPositions = 8192, BosTokenId = 0, EosTokenIds = [1] },
        _ => throw new ArgumentException($"unknown model shape '{name}' (known: llama-2-7b, llama-3-8b, llama-3.1-8b, tiny).", nameof(name)),
    };

    /// <summary>Reads a Hugging Face config.json.</summary>
    /// <exception cref="ModelFormatException">Malformed JSON, a missing field, or inconsistent sizes.</exception>
    public static LlamaConfig FromHuggingFace(string path)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            JsonElement r = doc.RootElement;
            int heads = Int(r, "num_attention_heads");
            int hidden = Int(r, "hidden_size");
            JsonElement? rope = r.TryGetProperty("rope_parameters", out var rp) && rp.ValueKind == JsonValueKind.Object ? rp
                : r.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object ? rs : null;
            float theta = r.TryGetProperty("rope_theta", out var t) ? t.GetSingle()
                : rope is { } rt && rt.TryGetProperty("rope_theta", out var t2) ? t2.GetSingle() : 10000f;
            RopeScaling? scaling = null;
            string ropeType = rope is { } ry && (ry.TryGetProperty("rope_type", out var ty) || ry.TryGetProperty("type", out ty)) ? ty.GetString() ?? "default" : "default";
            if (ropeType == "llama3")
                scaling = new RopeScaling(rope!.Value.GetProperty("factor").GetSingle(), rope.Value.GetProperty("low_freq_factor").GetSingle(),
                    rope.Value.GetProperty("high_freq_factor").GetSingle(), rope.Value.GetProperty("original_max_position_embeddings").GetInt32());
            else if (ropeType != "default")
                throw new ModelFormatException($"{path}: rope type '{ropeType}' is not supported (default, llama3).");
            var config = new LlamaConfig
            {
                VocabSize = Int(r, "vocab_size"),
                HiddenSize = hidden,
                IntermediateSize = Int(r, "intermediate_size"),
                Layers = Int(r, "num_hidden_layers"),
                Heads = heads,
                KvHeads = r.TryGetProperty("num_key_value_heads", out var kv) && kv.ValueKind == JsonValueKind.Number ? kv.GetInt32() : heads,
                HeadDim = r.TryGetProperty("head_dim", out var hd) && hd.ValueKind == JsonValueKind.Number ? hd.GetInt32() : hidden / Math.Max(heads, 1),
                RmsNormEps = r.TryGetProperty("rms_norm_eps", out var eps) ? eps.GetSingle() : 1e-5f,
                RopeTheta = theta,
                RopeScaling = scaling,
                TiedEmbeddings = r.TryGetProperty("tie_word_embeddings", out var tie) && tie.ValueKind == JsonValueKind.True,
                MaxPositions = r.TryGetProperty("max_position_embeddings", out var mp) ? mp.GetInt32() : 4096,
                BosTokenId = r.TryGetProperty("bos_token_id", out var bos) && bos.ValueKind == JsonValueKind.Number ? bos.GetInt32() : 1,
                EosTokenIds = !r.TryGetProperty("eos_token_id", out var eos) ? [2]
                    : eos.ValueKind == JsonValueKind.Array ? eos.EnumerateArray().Select(e => e.GetInt32()).ToArray() : [eos.GetInt32()],
            };
            config.Validate(path);
            return config;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new ModelFormatException($"{path}: not a valid Llama config.json ({e.Message}).", e);
        }
    }

    /// <summary>Checks that the sizes are positive and consistent.</summary>
    /// <exception cref="ModelFormatException">A size is non-positive or heads do not divide evenly.</exception>
    public void Validate(string source = "config")
    {
        foreach ((string name, int value) in new[] { ("vocab_size", VocabSize), ("hidden_size", HiddenSize), ("intermediate_size", IntermediateSize),
                     ("num_hidden_layers", Layers), ("num_attention_heads", Heads), ("num_key_value_heads", KvHeads), ("head_dim", HeadDim), ("max_position_embeddings", MaxPositions) })
            if (value <= 0) throw new ModelFormatException($"{source}: {name} must be > 0, got {value}.");
        if (Heads % KvHeads != 0) throw new ModelFormatException($"{source}: {Heads} attention heads cannot share {KvHeads} KV heads.");
        if (HeadDim % 2 != 0) throw new ModelFormatException($"{source}: head_dim {HeadDim} must be even for RoPE.");
        if (!(RmsNormEps > 0)) throw new ModelFormatException($"{source}: rms_norm_eps must be > 0.");
    }

    private static int Int(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : throw new KeyNotFoundException($"field '{name}' is missing");
}
