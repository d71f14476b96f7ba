using Tidal.Core;
using Tidal.Core.Reference;
using Tidal.Core.Numerics;
using Tidal.Core.Tensors;
using Tidal.Models.Config;

namespace Tidal.Models.Loading;

/// <summary>Synthetic HF-named weights of a config's shapes: matrices uniform with standard deviation 0.02 and unit norm weights, from a seed.</summary>
public sealed class RandomTensorSource : ITensorSource
{
    private readonly Dictionary<string, Shape> _shapes = new(StringComparer.Ordinal);
    private readonly List<HostTensor> _made = [];
    private readonly DType _type;
    private readonly int _seed;

    /// <summary>Describes every tensor <paramref name="config"/> needs; data is generated on <see cref="Get"/>.</summary>
    public RandomTensorSource(LlamaConfig config, DType type, int seed)
    {
        _type = type;
        _seed = seed;
        int h = config.HiddenSize, q = config.Heads * config.HeadDim, kv = config.KvHeads * config.HeadDim, ff = config.IntermediateSize;
        _shapes["model.embed_tokens.weight"] = new Shape(config.VocabSize, h);
        _shapes["model.norm.weight"] = new Shape(h);
        if (!config.TiedEmbeddings) _shapes["lm_head.weight"] = new Shape(config.VocabSize, h);
        for (int l = 0; l < config.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            _shapes[p + "input_layernorm.weight"] = new Shape(h);
            _shapes[p + "post_attention_layernorm.weight"] = new Shape(h);
            _shapes[p + "self_attn.q_proj.weight"] = new Shape(q, h);
            _shapes[p + "self_attn.k_proj.weight"] = new Shape(kv, h);
            _shapes[p + "self_attn.v_proj.weight"] = new Shape(kv, h);
            _shapes[p + "self_attn.o_proj.weight"] = new Shape(h, q);
            _shapes[p + "mlp.gate_proj.weight"] = new Shape(ff, h);
            _shapes[p + "mlp.up_proj.weight"] = new Shape(ff, h);
            _shapes[p + "mlp.down_proj.weight"] = new Shape(h, ff);
        }
    }

    /// <inheritdoc/>
    public IReadOnlyCollection<string> Names => _shapes.Keys;

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, string> Metadata { get; } = new Dictionary<string, string>();

    /// <inheritdoc/>
    public bool Contains(string name) => _shapes.ContainsKey(name);

    /// <summary>The shape of <paramref name="name"/>.</summary>
    public Shape ShapeOf(string name) => _shapes.TryGetValue(name, out Shape s) ? s : throw new ModelFormatException($"tensor '{name}' is missing.");

    /// <inheritdoc/>
    public HostTensor Get(string name, Shape expected)
    {
        if (!_shapes.TryGetValue(name, out Shape shape)) throw new ModelFormatException($"tensor '{name}' is missing.");
        if (shape != expected) throw new ModelFormatException($"tensor '{name}' has shape {shape}, expected {expected}.");
        // Counter-based draws, in parallel: an 8B-parameter shape is generated in seconds, the same on every machine.
        // Matrices: uniform with standard deviation 0.02 (Llama's initialiser scale); norms: 1.
        ulong stream = (ulong)(uint)StableHash(name) << 32 | (uint)_seed;
        var values = new float[shape.ElementCount];
        bool norm = shape.Rank == 1;
        const float halfWidth = 0.02f * 1.7320508f; // √3 · σ
        Parallel.For(0, (values.Length + Block - 1) / Block, b =>
        {
            for (int i = b * Block, end = Math.Min(values.Length, i + Block); i < end; i++)
                values[i] = norm ? 1f : halfWidth * (float)(2 * Sampling.Uniform(stream, i) - 1);
        });
        var t = HostTensor.Allocate(_type, shape);
        switch (_type)
        {
            case DType.F32: values.CopyTo(t.AsSpan<float>()); break;
            case DType.F16: Conversions.ToHalf(values, t.AsSpan<Half>()); break;
            default: Conversions.ToBFloat16(values, t.AsSpan<BFloat16>()); break;
        }
        _made.Add(t);
        return t;
    }

    private const int Block = 1 << 16;

    private static int StableHash(string s)
    {
        uint h = 2166136261;
        foreach (char c in s) h = (h ^ c) * 16777619;
        return (int)h;
    }

    /// <summary>Frees the generated tensors.</summary>
    public void Dispose()
    {
        foreach (var t in _made) t.Dispose();
        _made.Clear();
    }
}
