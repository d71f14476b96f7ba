using Tidal.Core.Reference;
using Tidal.Core.Tensors;

namespace Tidal.Core.Backends;

/// <summary>
/// The CPU backend: every operation is the <see cref="Reference"/> op itself (SIMD, multithreaded where sizes
/// warrant), over pooled host memory. It is Tidal's CPU fallback and the oracle GPU backends are tested against.
/// </summary>
public sealed class CpuBackend : IBackend
{
    /// <inheritdoc/>
    public string Name => $"CPU (SIMD reference, {Environment.ProcessorCount} threads{(KvCacheType == DType.F16 ? ", F16 KV cache" : "")})";

    /// <summary>A CPU backend keeping KV caches in <paramref name="kvCacheType"/>: F32 (default, the most exact) or F16
    /// (the GPU backend's cache type: a CPU run then reproduces a GPU run's numbers to the bit).</summary>
    /// <exception cref="ArgumentException">Any other dtype.</exception>
    public CpuBackend(DType kvCacheType = DType.F32)
    {
        if (kvCacheType is not (DType.F32 or DType.F16))
            throw new ArgumentException($"the CPU backend keeps KV caches in F32 or F16, not {kvCacheType}.", nameof(kvCacheType));
        KvCacheType = kvCacheType;
    }

    /// <inheritdoc/>
    public DType KvCacheType { get; }

    /// <inheritdoc/>
    public ITensor Allocate(DType type, Shape shape) => new CpuTensor(HostTensor.Allocate(type, shape));

    /// <summary>Wraps an existing host tensor (e.g. memory-mapped weights) without copying; the caller keeps owning it.</summary>
    public static ITensor Wrap(HostTensor tensor) => new CpuTensor(tensor, owns: false);

    /// <inheritdoc/>
    public void Upload<T>(ReadOnlySpan<T> source, ITensor destination) where T : unmanaged
    {
        Span<T> target = Host(destination).AsSpan<T>();
        if (source.Length != target.Length)
            throw new ArgumentException($"source has {source.Length} elements but the tensor {destination.Shape} holds {target.Length}.", nameof(source));
        source.CopyTo(target);
    }

    /// <inheritdoc/>
    public void Download<T>(ITensor source, Span<T> destination) where T : unmanaged
    {
        ReadOnlySpan<T> from = Host(source).AsReadOnlySpan<T>();
        if (destination.Length != from.Length)
            throw new ArgumentException($"destination has {destination.Length} elements but the tensor {source.Shape} holds {from.Length}.", nameof(destination));
        from.CopyTo(destination);
    }

    /// <inheritdoc/>
    public void Embed(ITensor table, int token, ITensor output)
    {
        Span<float> y = F32(output);
        switch (table.DType)
        {
            case DType.F32: Elementwise.Embed(Read<float>(table), token, y); break;
            case DType.F16: Elementwise.Embed(Read<Half>(table), token, y); break;
            case DType.BF16: Elementwise.Embed(Read<BFloat16>(table), token, y); break;
            default: throw Unsupported(table, nameof(table));
        }
    }

    /// <inheritdoc/>
    public void RmsNorm(ITensor x, ITensor weight, float eps, ITensor y)
    {
        int n = (int)weight.Shape.ElementCount, rows = Geometry.NormRows(x, weight, y);
        for (int r = 0; r < rows; r++)
        {
            ReadOnlySpan<float> row = Read<float>(x).Slice(r * n, n);
            Span<float> output = F32(y).Slice(r * n, n);
            switch (weight.DType)
            {
                case DType.F32: Reference.RmsNorm.Apply(row, Read<float>(weight), eps, output); break;
                case DType.F16: Reference.RmsNorm.Apply(row, Read<Half>(weight), eps, output); break;
                case DType.BF16: Reference.RmsNorm.Apply(row, Read<BFloat16>(weight), eps, output); break;
                default: throw Unsupported(weight, nameof(weight));
            }
        }
    }

    /// <inheritdoc/>
    public void MatMul(ITensor weight, ITensor x, ITensor y)
    {
        if (weight.Shape.Rank != 2) throw new ArgumentException($"weight must be [rows, cols], got {weight.Shape}.", nameof(weight));
        int batch = (int)(x.Shape.ElementCount / weight.Shape[1]);
        switch (weight.DType)
        {
            case DType.F32: Linear.MatMul(Read<float>(weight), Read<float>(x), F32(y), batch); break;
            case DType.F16: Linear.MatMul(Read<Half>(weight), Read<float>(x), F32(y), batch); break;
            case DType.BF16: Linear.MatMul(Read<BFloat16>(weight), Read<float>(x), F32(y), batch); break;
            default: throw Unsupported(weight, nameof(weight));
        }
    }

    /// <inheritdoc/>
    public void Rope(ITensor x, ITensor cos, ITensor sin, int position, RopeLayout layout)
    {
        int half = cos.Shape[cos.Shape.Rank - 1], d = 2 * half;
        (int rows, int heads) = Geometry.RopeRows(x, cos, position);
        for (int r = 0; r < rows; r++)
            Reference.Rope.Rotate(F32(x).Slice(r * heads * d, heads * d), d, Read<float>(cos).Slice((position + r) * half, half),
                Read<float>(sin).Slice((position + r) * half, half), layout);
    }

    /// <inheritdoc/>
    public void AddInPlace(ITensor x, ITensor y) => Elementwise.AddInPlace(F32(x), Read<float>(y));

    /// <inheritdoc/>
    public void SwiGlu(ITensor gate, ITensor up, ITensor output) => Elementwise.SwiGlu(Read<float>(gate), Read<float>(up), F32(output));

    /// <inheritdoc/>
    public void AppendKv(ITensor keys, ITensor values, ITensor k, ITensor v, int position)
    {
        (int kvHeads, int capacity, int d) = Geometry.Cache(keys);
        int rows = Geometry.AppendRows(keys, k, v, position);
        ReadOnlySpan<float> kf = Read<float>(k), vf = Read<float>(v);
        for (int r = 0; r < rows; r++)
            for (int h = 0; h < kvHeads; h++)
            {
                int row = (h * capacity + position + r) * d, from = (r * kvHeads + h) * d;
                switch (keys.DType)
                {
                    case DType.F32:
                        kf.Slice(from, d).CopyTo(F32(keys).Slice(row, d));
                        vf.Slice(from, d).CopyTo(F32(values).Slice(row, d));
                        break;
                    case DType.F16:
                        Numerics.Conversions.ToHalf(kf.Slice(from, d), Host(keys).AsSpan<Half>().Slice(row, d));
                        Numerics.Conversions.ToHalf(vf.Slice(from, d), Host(values).AsSpan<Half>().Slice(row, d));
                        break;
                    default: throw Unsupported(keys, nameof(keys));
                }
            }
    }

    /// <inheritdoc/>
    public void Attention(ITensor q, ITensor keys, ITensor values, int length, ITensor output, ITensor? logits = null)
    {
        Span<float> l = logits is null ? default : F32(logits).Slice(0, (int)(q.Shape.ElementCount / Geometry.Cache(keys).HeadDim) * length);
        switch (keys.DType)
        {
            case DType.F32: Reference.Attention.DecodeDense(Read<float>(q), Kv<float>(keys, values, length), F32(output), l); break;
            case DType.F16: Reference.Attention.DecodeDense(Read<float>(q), Kv<Half>(keys, values, length), F32(output), l); break;
            default: throw Unsupported(keys, nameof(keys));
        }
    }

    /// <inheritdoc/>
    public void CausalAttention(ITensor q, ITensor keys, ITensor values, int first, ITensor output)
    {
        (int rows, _, _) = Geometry.Causal(q, keys, first, output);
        int length = first + rows - 1, stride = q.Shape[1];
        switch (keys.DType)
        {
            case DType.F32: Reference.Attention.Causal(Read<float>(q), stride, Kv<float>(keys, values, length), first, rows, F32(output)); break;
            case DType.F16: Reference.Attention.Causal(Read<float>(q), stride, Kv<Half>(keys, values, length), first, rows, F32(output)); break;
            default: throw Unsupported(keys, nameof(keys));
        }
    }

    /// <inheritdoc/>
    public void SparseAttention(ITensor q, ITensor keys, ITensor values, int length, ITensor indices, ITensor output)
    {
        int rows = indices.Shape[0];
        switch (keys.DType)
        {
            case DType.F32: Reference.Attention.DecodeSparse(Read<float>(q), Kv<float>(keys, values, length), Read<int>(indices), rows, F32(output)); break;
            case DType.F16: Reference.Attention.DecodeSparse(Read<float>(q), Kv<Half>(keys, values, length), Read<int>(indices), rows, F32(output)); break;
            default: throw Unsupported(keys, nameof(keys));
        }
    }

    /// <inheritdoc/>
    public void SelectTopK(ITensor logits, int length, int budget, ForcedTokens forced, ITensor indices)
    {
        int heads = logits.Shape[0], groups = indices.Shape[0];
        ReadOnlySpan<float> l = Read<float>(logits).Slice(0, heads * length);
        Span<int> target = Host(indices).AsSpan<int>().Slice(0, groups * Math.Min(budget, length));
        if (groups == heads) TopK.SelectPerQueryHead(l, heads, budget, target, forced);
        else TopK.SelectPerKvHead(l, heads, groups, budget, target, forced);
    }

    /// <inheritdoc/>
    public void UpdatePageBounds(ITensor key, int position, ITensor min, ITensor max)
    {
        int kvHeads = min.Shape[0], width = kvHeads * min.Shape[2], rows = Geometry.BoundRows(key, position, min);
        for (int r = 0; r < rows; r++) Quest.UpdatePageBounds(Read<float>(key).Slice(r * width, width), position + r, kvHeads, F32(min), F32(max));
    }

    /// <inheritdoc/>
    public void SelectPages(ITensor q, ITensor min, ITensor max, int length, int pageBudget, ITensor indices)
    {
        int kvHeads = min.Shape[0], heads = q.Shape[0], pages = Quest.PageCount(length);
        var scores = new float[heads * pages];
        Quest.ScorePages(Read<float>(q), heads, kvHeads, Read<float>(min), Read<float>(max), length, scores);
        int count = Quest.SelectedTokenCount(length, pageBudget);
        Span<int> target = Host(indices).AsSpan<int>();
        if (target.Length != heads * count) throw new ArgumentException($"indices {indices.Shape} must be [{heads}, {count}].", nameof(indices));
        for (int h = 0; h < heads; h++)
            Quest.SelectTokens(scores.AsSpan(h * pages, pages), pageBudget, length, target.Slice(h * count, count));
    }

    /// <inheritdoc/>
    public int Argmax(ITensor logits) => Elementwise.Argmax(Read<float>(logits));

    /// <inheritdoc/>
    public int Sample(ITensor logits, float temperature, float topP, ulong seed, long step) =>
        Sampling.Sample(Read<float>(logits), temperature, topP, seed, step);

    /// <summary>Nothing to release: each tensor owns its memory.</summary>
    public void Dispose() { }

    private static HostTensor Host(ITensor tensor) =>
        tensor is CpuTensor t ? t.Host : throw new ArgumentException($"tensor belongs to another backend ({tensor.GetType().Name}).", nameof(tensor));

    private static ReadOnlySpan<T> Read<T>(ITensor tensor) where T : unmanaged => Host(tensor).AsReadOnlySpan<T>();

    private static Span<float> F32(ITensor tensor) => Host(tensor).AsSpan<float>();

    private static KvView<T> Kv<T>(ITensor keys, ITensor values, int length) where T : unmanaged
    {
        (int kvHeads, int capacity, int d) = Geometry.Cache(keys);
        return new KvView<T>(Read<T>(keys), Read<T>(values), kvHeads, capacity, d, length);
    }

    private static ArgumentException Unsupported(ITensor tensor, string name) => new($"{tensor.DType} is not supported here.", name);

    private sealed class CpuTensor(HostTensor host, bool owns = true) : ITensor
    {
        public HostTensor Host { get; } = host;
        public DType DType => Host.DType;
        public Shape Shape => Host.Shape;

        public ITensor Slice(int start, int count) => new CpuTensor(Host.Rows(start, count), owns: false);

        public ITensor Reshape(Shape shape) => new CpuTensor(Host.Reshape(shape), owns: false);

        public void Dispose()
        {
            if (owns) Host.Dispose();
        }
    }
}
