using System.Text;
using Tidal.Core;
using Tidal.Core.Tensors;
using Tidal.Models.Config;

namespace Tidal.Models.Loading;

/// <summary>Writes GGUF v3 files (tests build synthetic models with it; a Llama model converts from HF tensors).</summary>
public static class GgufWriter
{
    private const int Alignment = 32;

    /// <summary>
    /// Writes a Llama model: metadata from <paramref name="config"/>, tensors from <paramref name="hf"/> renamed to
    /// llama.cpp's names, with Q/K rows permuted to GGUF's interleaved RoPE order as llama.cpp's converter does, and
    /// Llama-3.1 RoPE scaling as a rope_freqs tensor of divisors.
    /// </summary>
    public static void WriteLlama(string path, LlamaConfig config, ITensorSource hf)
    {
        var metadata = new List<(string, object)>
        {
            ("general.architecture", "llama"),
            ("general.alignment", (uint)Alignment),
            ("llama.context_length", (uint)config.MaxPositions),
            ("llama.embedding_length", (uint)config.HiddenSize),
            ("llama.block_count", (uint)config.Layers),
            ("llama.feed_forward_length", (uint)config.IntermediateSize),
            ("llama.attention.head_count", (uint)config.Heads),
            ("llama.attention.head_count_kv", (uint)config.KvHeads),
            ("llama.attention.key_length", (uint)config.HeadDim),
            ("llama.attention.layer_norm_rms_epsilon", config.RmsNormEps),
            ("llama.rope.freq_base", config.RopeTheta),
            ("tokenizer.ggml.bos_token_id", (uint)config.BosTokenId),
            ("tokenizer.ggml.eos_token_id", (uint)config.EosTokenIds[0]),
        };
        var tensors = new List<(string, HostTensor)>();
        var owned = new List<HostTensor>();
        try
        {
            int h = config.HiddenSize, q = config.Heads * config.HeadDim, kv = config.KvHeads * config.HeadDim, ff = config.IntermediateSize;
            void Add(string name, params int[] dims)
            {
                HostTensor t = hf.Get(name, new Shape(dims));
                int heads = name.EndsWith("q_proj.weight", StringComparison.Ordinal) ? config.Heads : name.EndsWith("k_proj.weight", StringComparison.Ordinal) ? config.KvHeads : 0;
                if (heads > 0) owned.Add(t = RopeRows.ToInterleaved(t, heads));
                tensors.Add((GgufFile.FromHuggingFaceName(name)!, t));
            }
            if (config.RopeScaling is not null)
            {
                // llama.cpp writes Llama-3.1 scaling as per-frequency divisors.
                HostTensor divisors = HostTensor.FromSpan<float>(config.RopeScaling.Divisors(config.HeadDim, config.RopeTheta), new Shape(config.HeadDim / 2));
                owned.Add(divisors);
                tensors.Add(("rope_freqs.weight", divisors));
            }
            Add("model.embed_tokens.weight", config.VocabSize, h);
            Add("model.norm.weight", h);
            if (!config.TiedEmbeddings) Add("lm_head.weight", config.VocabSize, h);
            for (int l = 0; l < config.Layers; l++)
            {
                string p = $"model.layers.{l}.";
                Add(p + "input_layernorm.weight", h);
                Add(p + "self_attn.q_proj.weight", q, h);
                Add(p + "self_attn.k_proj.weight", kv, h);
                Add(p + "self_attn.v_proj.weight", kv, h);
                Add(p + "self_attn.o_proj.weight", h, q);
                Add(p + "post_attention_layernorm.weight", h);
                Add(p + "mlp.gate_proj.weight", ff, h);
                Add(p + "mlp.up_proj.weight", ff, h);
                Add(p + "mlp.down_proj.weight", h, ff);
            }
            Write(path, metadata, tensors);
        }
        finally
        {
            foreach (var t in owned) t.Dispose();
        }
    }

    /// <summary>Writes metadata (string, bool, uint, int, float, ulong, long, double values) and tensors.</summary>
    public static void Write(string path, IReadOnlyList<(string Key, object Value)> metadata, IReadOnlyList<(string Name, HostTensor Tensor)> tensors)
    {
        using var stream = File.Create(path);
        using var w = new BinaryWriter(stream, Encoding.UTF8);
        w.Write(GgufFile.Magic);
        w.Write(3u);
        w.Write((ulong)tensors.Count);
        w.Write((ulong)metadata.Count);
        foreach ((string key, object value) in metadata)
        {
            WriteString(w, key);
            switch (value)
            {
                case uint u: w.Write(4u); w.Write(u); break;
                case int i: w.Write(5u); w.Write(i); break;
                case float f: w.Write(6u); w.Write(f); break;
                case bool b: w.Write(7u); w.Write((byte)(b ? 1 : 0)); break;
                case string s: w.Write(8u); WriteString(w, s); break;
                case ulong ul: w.Write(10u); w.Write(ul); break;
                case long l: w.Write(11u); w.Write(l); break;
                case double d: w.Write(12u); w.Write(d); break;
                default: throw new ArgumentException($"metadata '{key}' has unsupported type {value.GetType().Name}.", nameof(metadata));
            }
        }
        long offset = 0;
        var offsets = new List<long>();
        foreach ((string name, HostTensor t) in tensors)
        {
            WriteString(w, name);
            w.Write((uint)t.Shape.Rank);
            for (int d = t.Shape.Rank - 1; d >= 0; d--) w.Write((ulong)t.Shape[d]);
            w.Write(t.DType switch { DType.F32 => 0u, DType.F16 => 1u, DType.BF16 => 30u, _ => throw new ArgumentException($"tensor '{name}' is {t.DType}.", nameof(tensors)) });
            w.Write((ulong)offset);
            offsets.Add(offset);
            offset = (offset + t.ByteLength + Alignment - 1) / Alignment * Alignment;
        }
        Pad(w);
        long dataStart = stream.Position;
        for (int i = 0; i < tensors.Count; i++)
        {
            while (stream.Position < dataStart + offsets[i]) w.Write((byte)0);
            w.Write(tensors[i].Tensor.Bytes);
        }
        Pad(w);
    }

    private static void Pad(BinaryWriter w)
    {
        while (w.BaseStream.Position % Alignment != 0) w.Write((byte)0);
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }
}
