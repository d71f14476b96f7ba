using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Core.Reference;
using Tidal.Core.Tensors;
using Tidal.Models.Config;

namespace Tidal.Models.Engine;

/// <summary>
/// Everything one sequence needs on the backend, allocated once for a fixed context: the KV cache, Quest's page
/// bounds, the selected-index buffers, RoPE tables and scratch activations. Nothing is allocated per step.
/// </summary>
public sealed class DecodeState : IDisposable
{
    private readonly OwnedTensors _owned = new();

    /// <summary>
    /// Allocates the state for up to <paramref name="capacity"/> positions, prefilling up to <paramref name="chunk"/>
    /// tokens at a time: a larger chunk lets the matmul reuse each weight load across more tokens (bench/RESULTS.md,
    /// layer benchmark); the results do not depend on it, bit for bit.
    /// </summary>
    /// <exception cref="ArgumentException">capacity ≤ 0 or larger than the model's trained context.</exception>
    public DecodeState(LlamaConfig config, IBackend backend, int capacity, DType cacheType, int chunk = 128)
    {
        if (capacity <= 0) throw new ArgumentException($"capacity must be > 0, got {capacity}.", nameof(capacity));
        if (capacity > config.MaxPositions)
            throw new ArgumentException($"capacity {capacity} exceeds the model's trained context of {config.MaxPositions} positions.", nameof(capacity));
        if (cacheType is not (DType.F32 or DType.F16)) throw new ArgumentException($"the KV cache is F32 or F16, not {cacheType}.", nameof(cacheType));
        Capacity = capacity;
        Chunk = chunk;
        int d = config.HeadDim, kv = config.KvHeads, h = config.Heads, pages = Quest.PageCount(capacity);
        Keys = new ITensor[config.Layers];
        Values = new ITensor[config.Layers];
        PageMin = new ITensor[config.Layers];
        PageMax = new ITensor[config.Layers];
        for (int l = 0; l < config.Layers; l++)
        {
            Keys[l] = Own(backend.Allocate(cacheType, new Shape(kv, capacity, d)));
            Values[l] = Own(backend.Allocate(cacheType, new Shape(kv, capacity, d)));
            PageMin[l] = Own(backend.Allocate(DType.F32, new Shape(kv, pages, d)));
            PageMax[l] = Own(backend.Allocate(DType.F32, new Shape(kv, pages, d)));
        }
        var rope = new RopeTable(d, config.RopeTheta, capacity, config.RopeScaling, config.RopeDivisors);
        RopeCos = Own(backend.Allocate(DType.F32, new Shape(capacity, d / 2)));
        RopeSin = Own(backend.Allocate(DType.F32, new Shape(capacity, d / 2)));
        backend.Upload(rope.CosTable, RopeCos);
        backend.Upload(rope.SinTable, RopeSin);
        Selected = Own(backend.Allocate(DType.I32, new Shape(h * capacity)));
        AttentionLogits = Own(backend.Allocate(DType.F32, new Shape(h, capacity)));
        X = Own(backend.Allocate(DType.F32, new Shape(chunk, config.HiddenSize)));
        Normed = Own(backend.Allocate(DType.F32, new Shape(chunk, config.HiddenSize)));
        Qkv = Own(backend.Allocate(DType.F32, new Shape(chunk, (h + 2 * kv) * d)));
        Attended = Own(backend.Allocate(DType.F32, new Shape(chunk, h * d)));
        Projected = Own(backend.Allocate(DType.F32, new Shape(chunk, config.HiddenSize)));
        GateUp = Own(backend.Allocate(DType.F32, new Shape(chunk, 2 * config.IntermediateSize)));
        Hidden = Own(backend.Allocate(DType.F32, new Shape(chunk, config.IntermediateSize)));
        Logits = Own(backend.Allocate(DType.F32, new Shape(config.VocabSize)));
    }

    /// <summary>Positions the cache holds.</summary>
    public int Capacity { get; }
    /// <summary>Rows of the scratch activations: tokens prefilled per forward pass.</summary>
    public int Chunk { get; }
    /// <summary>Positions filled so far (the next token's position).</summary>
    public int Length { get; internal set; }

    /// <summary>K cache per layer, [kvHeads, capacity, headDim].</summary>
    public ITensor[] Keys { get; }
    /// <summary>V cache per layer, [kvHeads, capacity, headDim].</summary>
    public ITensor[] Values { get; }
    /// <summary>Quest's per-page key minima per layer, [kvHeads, pages, headDim].</summary>
    public ITensor[] PageMin { get; }
    /// <summary>Quest's per-page key maxima per layer, [kvHeads, pages, headDim].</summary>
    public ITensor[] PageMax { get; }
    /// <summary>RoPE cos table, [capacity, headDim/2].</summary>
    public ITensor RopeCos { get; }
    /// <summary>RoPE sin table, [capacity, headDim/2].</summary>
    public ITensor RopeSin { get; }
    /// <summary>The persisted selection (TidalDecode) or page tokens (Quest), flat [heads · capacity]; viewed as [groups, k].</summary>
    public ITensor Selected { get; }
    /// <summary>Selection layers' scaled logits, [heads, capacity].</summary>
    public ITensor AttentionLogits { get; }
    /// <summary>Residual stream, [chunk, hidden].</summary>
    public ITensor X { get; }
    /// <summary>Normalised residual, [chunk, hidden].</summary>
    public ITensor Normed { get; }
    /// <summary>Q, K and V of up to chunk tokens, (heads + 2·kvHeads)·headDim values per token: all queries, then all keys,
    /// then all values (for one token, its fused QKV row).</summary>
    public ITensor Qkv { get; }
    /// <summary>Attention outputs, [chunk, heads·headDim].</summary>
    public ITensor Attended { get; }
    /// <summary>Projection outputs added to the residual, [chunk, hidden].</summary>
    public ITensor Projected { get; }
    /// <summary>Gate and up outputs of up to chunk tokens: all gates, then all ups (for one token, its fused gate/up row).</summary>
    public ITensor GateUp { get; }
    /// <summary>SwiGLU outputs, [chunk, intermediate].</summary>
    public ITensor Hidden { get; }
    /// <summary>Logits of the last token, [vocab].</summary>
    public ITensor Logits { get; }

    private ITensor Own(ITensor t) => _owned.Own(t);

    /// <summary>Frees every buffer.</summary>
    public void Dispose() => _owned.Dispose();
}
