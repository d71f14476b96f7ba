using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Core.Tensors;
using Tidal.Models.Config;
using Tidal.Models.Loading;

namespace Tidal.Models.Engine;

/// <summary>One decoder layer's weights on a backend; Q/K/V and gate/up are fused into one matrix each at load time.</summary>
public sealed class LayerWeights
{
    /// <summary>RMSNorm before attention, [hidden].</summary>
    public required ITensor AttentionNorm { get; init; }
    /// <summary>Q, K and V projections stacked, [(heads + 2·kvHeads)·headDim, hidden].</summary>
    public required ITensor Qkv { get; init; }
    /// <summary>Output projection, [hidden, heads·headDim].</summary>
    public required ITensor Output { get; init; }
    /// <summary>RMSNorm before the MLP, [hidden].</summary>
    public required ITensor MlpNorm { get; init; }
    /// <summary>Gate and up projections stacked, [2·intermediate, hidden].</summary>
    public required ITensor GateUp { get; init; }
    /// <summary>Down projection, [hidden, intermediate].</summary>
    public required ITensor Down { get; init; }
}

/// <summary>A Llama model's weights, loaded once onto a backend and shared by every session.</summary>
public sealed class ModelWeights : IDisposable
{
    private readonly OwnedTensors _owned = new();

    private ModelWeights(LlamaConfig config, IBackend backend)
    {
        Config = config;
        Backend = backend;
    }

    /// <summary>The model's shape.</summary>
    public LlamaConfig Config { get; }
    /// <summary>Where the weights live.</summary>
    public IBackend Backend { get; }
    /// <summary>Token embeddings, [vocab, hidden].</summary>
    public ITensor Embedding { get; private set; } = null!;
    /// <summary>Final RMSNorm, [hidden].</summary>
    public ITensor FinalNorm { get; private set; } = null!;
    /// <summary>Output projection to logits, [vocab, hidden] (the embedding table when tied).</summary>
    public ITensor LmHead { get; private set; } = null!;
    /// <summary>Per-layer weights.</summary>
    public IReadOnlyList<LayerWeights> Layers { get; private set; } = [];

    /// <summary>
    /// Loads HF-named tensors (model.layers.N.self_attn.q_proj.weight, ...) from <paramref name="source"/>, checking
    /// every shape against <paramref name="config"/>.
    /// </summary>
    /// <exception cref="ModelFormatException">A tensor is missing or has the wrong shape or dtype.</exception>
    public static ModelWeights Load(ITensorSource source, LlamaConfig config, IBackend backend, CancellationToken cancellationToken = default, IProgress<float>? progress = null)
    {
        config.Validate();
        var w = new ModelWeights(config, backend);
        try
        {
            int h = config.HiddenSize, qRows = config.Heads * config.HeadDim, kvRows = config.KvHeads * config.HeadDim, ff = config.IntermediateSize;
            w.Embedding = w.Upload(source, "model.embed_tokens.weight", new Shape(config.VocabSize, h));
            w.FinalNorm = w.Upload(source, "model.norm.weight", new Shape(h));
            w.LmHead = config.TiedEmbeddings ? w.Embedding : w.Upload(source, "lm_head.weight", new Shape(config.VocabSize, h));
            var layers = new LayerWeights[config.Layers];
            for (int l = 0; l < config.Layers; l++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                string p = $"model.layers.{l}.";
                layers[l] = new LayerWeights
                {
                    AttentionNorm = w.Upload(source, p + "input_layernorm.weight", new Shape(h)),
                    Qkv = w.Stack(source, h, (p + "self_attn.q_proj.weight", qRows), (p + "self_attn.k_proj.weight", kvRows), (p + "self_attn.v_proj.weight", kvRows)),
                    Output = w.Upload(source, p + "self_attn.o_proj.weight", new Shape(h, qRows)),
                    MlpNorm = w.Upload(source, p + "post_attention_layernorm.weight", new Shape(h)),
                    GateUp = w.Stack(source, h, (p + "mlp.gate_proj.weight", ff), (p + "mlp.up_proj.weight", ff)),
                    Down = w.Upload(source, p + "mlp.down_proj.weight", new Shape(h, ff)),
                };
                progress?.Report((l + 1f) / config.Layers);
            }
            w.Layers = layers;
            return w;
        }
        catch
        {
            w.Dispose();
            throw;
        }
    }

    /// <summary>Random weights of a named shape (for benchmarks): normal(0, 0.02) matrices, unit norms.</summary>
    public static ModelWeights Random(LlamaConfig config, IBackend backend, DType type, int seed = 0)
    {
        using var source = new RandomTensorSource(config, type, seed);
        return Load(source, config, backend);
    }

    private ITensor Upload(ITensorSource source, string name, Shape shape)
    {
        HostTensor host = source.Get(name, shape);
        ITensor t = Own(Backend.Allocate(host.DType, shape));
        CopyTo(host, t);
        return t;
    }

    /// <summary>Stacks matrices of equal width row-wise into one tensor (fused projections: one GEMV instead of several).</summary>
    private ITensor Stack(ITensorSource source, int cols, params (string Name, int Rows)[] parts)
    {
        HostTensor first = source.Get(parts[0].Name, new Shape(parts[0].Rows, cols));
        ITensor t = Own(Backend.Allocate(first.DType, new Shape(parts.Sum(p => p.Rows), cols)));
        int row = 0;
        foreach ((string name, int rows) in parts)
        {
            HostTensor part = source.Get(name, new Shape(rows, cols));
            if (part.DType != first.DType)
                throw new ModelFormatException($"tensor '{name}' is {part.DType} but '{parts[0].Name}' is {first.DType}; fused projections need one dtype.");
            CopyTo(part, t.Slice(row, rows));
            row += rows;
        }
        return t;
    }

    private void CopyTo(HostTensor host, ITensor target)
    {
        switch (host.DType)
        {
            case DType.F32: Backend.Upload(host.AsReadOnlySpan<float>(), target); break;
            case DType.F16: Backend.Upload(host.AsReadOnlySpan<Half>(), target); break;
            case DType.BF16: Backend.Upload(host.AsReadOnlySpan<BFloat16>(), target); break;
            default: throw new ModelFormatException($"weights must be F32, F16 or BF16, got {host.DType}.");
        }
    }

    private ITensor Own(ITensor t) => _owned.Own(t);

    /// <summary>Frees every weight tensor.</summary>
    public void Dispose() => _owned.Dispose();
}
