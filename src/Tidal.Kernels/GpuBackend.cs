using ILGPU;
using ILGPU.Runtime;
using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Core.Reference;
using Tidal.Core.Tensors;
using Tidal.Kernels.Accelerators;
using Tidal.Kernels.Kernels;

namespace Tidal.Kernels;

/// <summary>
/// The ILGPU backend: every <see cref="IBackend"/> operation is a kernel, on CUDA or on ILGPU's CPU accelerator, and
/// reproduces Tidal.Core's reference bit for bit (decode attention splits exactly as
/// <see cref="Core.Reference.Attention.DecodeSplitSize"/> says, as the reference does). Each kernel is compiled once, on first use.
/// KV caches must be F16. Operations are queued on the accelerator's stream; downloads wait for them.
/// </summary>
public sealed class GpuBackend : IBackend
{
    private readonly TidalAccelerator _device;
    private readonly Dictionary<string, MemoryBuffer1D<byte, Stride1D.Dense>> _scratch = [];

    /// <summary>Creates the accelerator <paramref name="kind"/> asks for. Each kernel is compiled on its first use (a
    /// program that never selects tokens never compiles the top-k kernels).</summary>
    public GpuBackend(DeviceKind kind = DeviceKind.Auto)
    {
        _device = TidalAccelerator.Create(kind);
        AttentionGroups = Accelerator.NumMultiprocessors;
    }

    private ElementwiseKernels ElementwiseKernels => field ??= new(Accelerator);
    private RmsNormKernel RmsNormKernel => field ??= new(Accelerator);
    private MatVecKernel MatVecKernel => field ??= new(Accelerator);
    private MatMulKernel MatMulKernel => field ??= new(Accelerator);
    private RopeKernel RopeKernel => field ??= new(Accelerator);
    private AppendKvKernel AppendKvKernel => field ??= new(Accelerator);
    private DecodeAttentionKernel DecodeAttentionKernel => field ??= new(Accelerator);
    private GroupScoreKernel GroupScoreKernel => field ??= new(Accelerator);
    private SampleKernel SampleKernel => field ??= new(Accelerator);
    private TopKSelectKernel TopKSelectKernel => field ??= new(Accelerator);
    private QuestPagesKernel QuestPagesKernel => field ??= new(Accelerator);
    private ArgmaxKernel ArgmaxKernel => field ??= new(Accelerator);

    /// <summary>Compiles every kernel now rather than on first use, so that what is timed afterwards (a prompt's first
    /// token, the first decode step) does not include compilation.</summary>
    public void CompileAll()
    {
        _ = ElementwiseKernels;
        _ = RmsNormKernel;
        _ = MatVecKernel;
        _ = MatMulKernel;
        _ = RopeKernel;
        _ = AppendKvKernel;
        DecodeAttentionKernel.CompileAll();
        _ = GroupScoreKernel;
        _ = SampleKernel;
        _ = TopKSelectKernel;
        _ = QuestPagesKernel;
        _ = ArgmaxKernel;
    }

    /// <inheritdoc/>
    public string Name => _device.Description;

    /// <summary>The accelerator (for timing and interop).</summary>
    public Accelerator Accelerator => _device.Accelerator;

    /// <inheritdoc/>
    public DType KvCacheType => DType.F16;

    /// <inheritdoc/>
    public ITensor Allocate(DType type, Shape shape)
    {
        MemoryBuffer1D<byte, Stride1D.Dense> buffer = _device.Allocate(checked(shape.ElementCount * type.SizeOf()));
        buffer.MemSetToZero();
        return new GpuTensor(buffer, buffer.View, type, shape);
    }

    /// <inheritdoc/>
    public void Upload<T>(ReadOnlySpan<T> source, ITensor destination) where T : unmanaged
    {
        GpuTensor t = Gpu(destination);
        CheckType<T>(t, nameof(destination));
        if (source.Length != t.Shape.ElementCount)
            throw new ArgumentException($"source has {source.Length} elements but the tensor {t.Shape} holds {t.Shape.ElementCount}.", nameof(source));
        t.View.Cast<T>().SubView(0, source.Length).CopyFromCPU(source);
    }

    /// <inheritdoc/>
    public void Download<T>(ITensor source, Span<T> destination) where T : unmanaged
    {
        GpuTensor t = Gpu(source);
        CheckType<T>(t, nameof(source));
        if (destination.Length != t.Shape.ElementCount)
            throw new ArgumentException($"destination has {destination.Length} elements but the tensor {t.Shape} holds {t.Shape.ElementCount}.", nameof(destination));
        Accelerator.Synchronize();
        t.View.Cast<T>().SubView(0, destination.Length).CopyToCPU(destination);
    }

    /// <inheritdoc/>
    public void Embed(ITensor table, int token, ITensor output)
    {
        int vocab = table.Shape[0], dim = table.Shape[1];
        if ((uint)token >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(token), token, $"token id outside the vocabulary of {vocab}.");
        ElementwiseKernels.LaunchEmbed(Gpu(table).View, FormatOf(table), token, dim, F32(output, dim));
    }

    /// <inheritdoc/>
    public void RmsNorm(ITensor x, ITensor weight, float eps, ITensor y)
    {
        int n = (int)weight.Shape.ElementCount, rows = Geometry.NormRows(x, weight, y);
        RmsNormKernel.Launch(F32(x, rows * n), Gpu(weight).View, FormatOf(weight), F32(y, rows * n), rows, n, eps);
    }

    /// <inheritdoc/>
    public void MatMul(ITensor weight, ITensor x, ITensor y)
    {
        if (weight.Shape.Rank != 2) throw new ArgumentException($"weight must be [rows, cols], got {weight.Shape}.", nameof(weight));
        int rows = weight.Shape[0], cols = weight.Shape[1];
        if (x.Shape.ElementCount % cols != 0) throw new ArgumentException($"x ({x.Shape}) is not [batch, {cols}].", nameof(x));
        int batch = (int)(x.Shape.ElementCount / cols);
        if (y.Shape.ElementCount != (long)batch * rows) throw new ArgumentException($"y ({y.Shape}) is not [{batch}, {rows}].", nameof(y));
        ArrayView<byte> w = Gpu(weight).View;
        ArrayView<float> xs = F32(x, batch * cols), ys = F32(y, batch * rows);
        // A batch of at least one tile reuses each weight load across items; a single row streams the weights once anyway.
        if (batch >= MatMulKernel.TileItems && MatMulKernel.Supports(FormatOf(weight), w, xs, cols)) MatMulKernel.Launch(w, FormatOf(weight), xs, ys, rows, cols, batch);
        else MatVecKernel.Launch(w, FormatOf(weight), xs, ys, rows, cols, batch);
    }

    /// <inheritdoc/>
    public void Rope(ITensor x, ITensor cos, ITensor sin, int position, RopeLayout layout)
    {
        int half = cos.Shape[cos.Shape.Rank - 1], d = 2 * half;
        (int rows, int heads) = Geometry.RopeRows(x, cos, position);
        RopeKernel.Launch(F32(x, rows * heads * d), F32(cos, (int)cos.Shape.ElementCount), F32(sin, (int)sin.Shape.ElementCount), rows, heads, d, position, layout == RopeLayout.Interleaved ? 1 : 0);
    }

    /// <inheritdoc/>
    public void AddInPlace(ITensor x, ITensor y)
    {
        int n = (int)x.Shape.ElementCount;
        if (y.Shape.ElementCount != n) throw new ArgumentException($"y has {y.Shape.ElementCount} elements but x has {n}.", nameof(y));
        ElementwiseKernels.LaunchAddInPlace(F32(x, n), F32(y, n), n);
    }

    /// <inheritdoc/>
    public void SwiGlu(ITensor gate, ITensor up, ITensor output)
    {
        int n = (int)gate.Shape.ElementCount;
        if (up.Shape.ElementCount != n || output.Shape.ElementCount != n) throw new ArgumentException("gate, up and output must have one length.", nameof(up));
        ElementwiseKernels.LaunchSwiGlu(F32(gate, n), F32(up, n), F32(output, n), n);
    }

    /// <inheritdoc/>
    public void AppendKv(ITensor keys, ITensor values, ITensor k, ITensor v, int position)
    {
        (int kvHeads, int capacity, int d) = Geometry.Cache(keys);
        int rows = Geometry.AppendRows(keys, k, v, position);
        var shape = new AppendKvKernel.AppendShape { Rows = rows, KvHeads = kvHeads, Capacity = capacity, HeadDim = d, Position = position, Pages = 0, WriteCache = 1 };
        ArrayView<float> none = Scratch("none", DType.F32, 1).Cast<float>();
        AppendKvKernel.Launch(F32(k, rows * kvHeads * d), F32(v, rows * kvHeads * d), Gpu(keys).View.Cast<ushort>(), Gpu(values).View.Cast<ushort>(), none, none, shape);
    }

    /// <inheritdoc/>
    public void UpdatePageBounds(ITensor key, int position, ITensor min, ITensor max)
    {
        int kvHeads = min.Shape[0], pages = min.Shape[1], d = min.Shape[2];
        int rows = Geometry.BoundRows(key, position, min);
        var shape = new AppendKvKernel.AppendShape { Rows = rows, KvHeads = kvHeads, Capacity = 0, HeadDim = d, Position = position, Pages = pages, WriteCache = 0 };
        ArrayView<ushort> none = Scratch("none", DType.F32, 1).Cast<ushort>();
        AppendKvKernel.Launch(F32(key, rows * kvHeads * d), F32(key, rows * kvHeads * d), none, none, F32(min, (int)min.Shape.ElementCount), F32(max, (int)max.Shape.ElementCount), shape);
    }

    /// <inheritdoc/>
    public void Attention(ITensor q, ITensor keys, ITensor values, int length, ITensor output, ITensor? logits = null) =>
        RunAttention(q, keys, values, DecodeAttentionKernel.Modes.Range, length, length, null, output, logits);

    /// <inheritdoc/>
    public void CausalAttention(ITensor q, ITensor keys, ITensor values, int first, ITensor output)
    {
        (int rows, int heads, int d) = Geometry.Causal(q, keys, first, output);
        (int kvHeads, int capacity, _) = Geometry.Cache(keys);
        if (keys.DType != DType.F16 || values.DType != DType.F16) throw new ArgumentException("the GPU backend keeps KV caches in F16.", nameof(keys));
        int width = q.Shape[1];
        // The grid's second dimension (at most 65535) holds rows × splits: long chunks of long rows go in parts.
        int splitsPerRow = 1;
        for (int r = 0; r < rows; r++) splitsPerRow = Math.Max(splitsPerRow, DecodeAttentionKernel.RowSplits(first + r));
        int perLaunch = Math.Max(1, 65535 / splitsPerRow);
        ArrayView<float> queries = F32(q, rows * width), outputs = F32(output, rows * heads * d);
        for (int r0 = 0; r0 < rows; r0 += perLaunch)
        {
            int n = Math.Min(perLaunch, rows - r0);
            var args = AttentionArgs(keys, values, DecodeAttentionKernel.Modes.Range, heads, kvHeads, capacity, d, rows: n, splitsPerRow) with
            {
                Q = queries.SubView((long)r0 * width, (long)n * width),
                Output = outputs.SubView((long)r0 * heads * d, (long)n * heads * d),
                Count = first + r0,
                QStride = width,
                SplitSize = Core.Reference.Attention.DecodeSplitSize(first + r0 + n - 1), // the largest: shared memory
            };
            DecodeAttentionKernel.Launch(args);
        }
    }

    /// <summary>What every attention launch shares: the cache, the head geometry, scratch for the splits' partial
    /// states and their tickets, the scale; no logits, no index set. Callers add the queries, the output and the token
    /// counts.</summary>
    private DecodeAttentionKernel.Args AttentionArgs(ITensor keys, ITensor values, int mode, int heads, int kvHeads, int capacity, int d, int rows, int splitsPerRow)
    {
        int headsPerBlock = DecodeAttentionKernel.HeadsPerBlockFor(mode, heads, heads / kvHeads, (long)rows * splitsPerRow, AttentionGroups);
        return new()
        {
            Keys = Gpu(keys).View,
            Values = Gpu(values).View,
            Partials = Scratch("partials", DType.F32, (long)rows * splitsPerRow * heads * d).Cast<float>(),
            Lse = Scratch("lse", DType.F32, (long)rows * splitsPerRow * heads).Cast<float>(),
            Logits = Scratch("none", DType.F32, 1).Cast<float>(),
            Indices = Scratch("none", DType.F32, 1).Cast<int>(),
            Mode = mode,
            Rows = rows,
            SplitsPerRow = splitsPerRow,
            Capacity = capacity,
            HeadDim = d,
            Group = heads / kvHeads,
            Heads = heads,
            HeadsPerBlock = headsPerBlock,
            Tickets = Scratch("attentionTickets", DType.I32, (long)rows * (heads / headsPerBlock), zeroed: true).Cast<int>(),
            Scale = 1f / MathF.Sqrt(d),
        };
    }

    /// <inheritdoc/>
    public void SparseAttention(ITensor q, ITensor keys, ITensor values, int length, ITensor indices, ITensor output)
    {
        (int kvHeads, _, int d) = Geometry.Cache(keys);
        int heads = (int)(q.Shape.ElementCount / d), rows = indices.Shape[0], k = (int)(indices.Shape.ElementCount / rows);
        int mode = rows == heads ? DecodeAttentionKernel.Modes.PerQueryHead
            : rows == kvHeads ? DecodeAttentionKernel.Modes.PerKvHead
            : rows == 1 ? DecodeAttentionKernel.Modes.Shared
            : throw new ArgumentException($"indices must have {heads} (per query head), {kvHeads} (per KV head) or 1 (shared) rows, got {rows}.", nameof(indices));
        RunAttention(q, keys, values, mode, k, length, indices, output, null);
    }

    private void RunAttention(ITensor q, ITensor keys, ITensor values, int mode, int count, int length, ITensor? indices, ITensor output, ITensor? logits)
    {
        (int kvHeads, int capacity, int d) = Geometry.Cache(keys);
        if (keys.DType != DType.F16 || values.DType != DType.F16) throw new ArgumentException("the GPU backend keeps KV caches in F16.", nameof(keys));
        if (q.Shape.ElementCount % d != 0) throw new ArgumentException($"q ({q.Shape}) is not [heads, {d}].", nameof(q));
        int heads = (int)(q.Shape.ElementCount / d);
        if (heads % kvHeads != 0) throw new ArgumentException($"{heads} query heads cannot share {kvHeads} KV heads.", nameof(q));
        if ((uint)length > (uint)capacity) throw new ArgumentException($"length {length} exceeds the cache's {capacity} positions.", nameof(length));
        if (output.Shape.ElementCount != (long)heads * d) throw new ArgumentException($"output must be [{heads}, {d}].", nameof(output));
        int splitSize = Core.Reference.Attention.DecodeSplitSize(count), splits = DecodeAttentionKernel.SplitCount(count, splitSize);
        var args = AttentionArgs(keys, values, mode, heads, kvHeads, capacity, d, rows: 1, splits) with
        {
            Q = F32(q, heads * d),
            Output = F32(output, heads * d),
            Count = count,
            QStride = heads * d,
            SplitSize = splitSize,
        };
        if (logits is not null) args = args with { Logits = F32(logits, (int)logits.Shape.ElementCount), WriteLogits = 1 };
        if (indices is not null) args = args with { Indices = Gpu(indices).View.Cast<int>() };
        if (logits is not null && logits.Shape.ElementCount < (long)heads * count) throw new ArgumentException($"logits must hold [{heads}, {count}].", nameof(logits));
        DecodeAttentionKernel.Launch(args);
    }

    /// <inheritdoc/>
    public void SelectTopK(ITensor logits, int length, int budget, ForcedTokens forced, ITensor indices)
    {
        int heads = logits.Shape[0], groups = indices.Shape[0], k = Math.Min(budget, length);
        if (budget <= 0) throw new ArgumentException($"budget must be > 0, got {budget}.", nameof(budget));
        if (groups <= 0 || heads % groups != 0) throw new ArgumentException($"{heads} heads cannot form {groups} selection groups.", nameof(indices));
        if (indices.Shape.ElementCount != (long)groups * k) throw new ArgumentException($"indices must be [{groups}, {k}], got {indices.Shape}.", nameof(indices));
        CheckForced(length, budget, forced);
        ArrayView<float> scores = F32(logits, heads * length);
        if (groups != heads)
        {
            ArrayView<float> lse = GroupScoreKernel.LaunchLogSumExps(scores, Scratch("groupLse", DType.F32, GroupScoreKernel.ScratchSize(heads, length)).Cast<float>(),
                Scratch("groupLseTickets", DType.I32, heads, zeroed: true).Cast<int>(), heads, length);
            ArrayView<float> aggregated = Scratch("aggregated", DType.F32, (long)groups * length).Cast<float>();
            GroupScoreKernel.LaunchScores(scores, lse, aggregated, heads, groups, length);
            scores = aggregated;
        }
        SelectTopK(new TopKSelectKernel.Args { Scores = scores, Output = Gpu(indices).View.Cast<int>(), N = length, K = k, Sinks = forced.Sinks, Window = forced.Window, Rows = groups });
    }

    /// <inheritdoc/>
    public void SelectPages(ITensor q, ITensor min, ITensor max, int length, int pageBudget, ITensor indices)
    {
        int kvHeads = min.Shape[0], maxPages = min.Shape[1], d = min.Shape[2], heads = (int)(q.Shape.ElementCount / d);
        int pages = Quest.PageCount(length), kp = Math.Min(pageBudget, pages), count = Quest.SelectedTokenCount(length, pageBudget);
        if (pages > maxPages) throw new ArgumentException($"{length} tokens need {pages} pages but the bounds hold {maxPages}.", nameof(length));
        if (indices.Shape.ElementCount != (long)heads * count) throw new ArgumentException($"indices must be [{heads}, {count}].", nameof(indices));
        ArrayView<float> scores = Scratch("pageScores", DType.F32, (long)heads * pages).Cast<float>();
        QuestPagesKernel.LaunchScore(F32(q, heads * d), F32(min, (int)min.Shape.ElementCount), F32(max, (int)max.Shape.ElementCount), scores,
            new QuestPagesKernel.PageShape { Heads = heads, Group = heads / kvHeads, HeadDim = d, Pages = pages, MaxPages = maxPages, Scale = 1f / MathF.Sqrt(d) });
        ArrayView<int> selected = Scratch("pages", DType.I32, (long)heads * kp).Cast<int>();
        SelectTopK(new TopKSelectKernel.Args { Scores = scores, Output = selected, N = pages, K = kp, Sinks = 0, Window = 1, Rows = heads });
        QuestPagesKernel.LaunchExpand(selected, Gpu(indices).View.Cast<int>(), heads, kp, count);
    }

    /// <inheritdoc/>
    public int Sample(ITensor logits, float temperature, float topP, ulong seed, long step)
    {
        Sampling.Validate(temperature, topP);
        if (temperature == 0) return Argmax(logits);
        int n = (int)logits.Shape.ElementCount;
        ArrayView<int> result = Scratch("sample", DType.I32, 1).Cast<int>();
        SampleKernel.Launch(new SampleKernel.Args
        {
            Logits = F32(logits, n), Masses = Scratch("masses", DType.I32, 2L * n).Cast<ulong>() /* n 64-bit masses */, Result = result, N = n,
            Temperature = temperature, TopP = topP, Uniform = Sampling.Uniform(seed, step),
        });
        return ReadResult(result);
    }

    /// <summary>Waits for the queued work, then reads the one int a selection kernel wrote.</summary>
    private int ReadResult(ArrayView<int> result)
    {
        var host = new int[1];
        Accelerator.Synchronize();
        result.SubView(0, 1).CopyToCPU(host);
        return host[0];
    }

    /// <inheritdoc/>
    public int Argmax(ITensor logits)
    {
        ArrayView<int> result = Scratch("argmax", DType.I32, 1).Cast<int>();
        ArgmaxKernel.Launch(F32(logits, (int)logits.Shape.ElementCount), result, (int)logits.Shape.ElementCount);
        return ReadResult(result);
    }

    /// <summary>Frees scratch buffers, the accelerator and its context (tensors must be disposed first).</summary>
    public void Dispose()
    {
        foreach (var b in _scratch.Values) b.Dispose();
        _scratch.Clear();
        _device.Dispose();
    }

    private static void CheckForced(int length, int budget, ForcedTokens forced)
    {
        if (budget >= length) return;
        int sinks = Math.Min(forced.Sinks, length), windowStart = Math.Max(0, length - Math.Max(forced.Window, 1));
        int forcedCount = sinks + (length - windowStart) - Math.Max(0, sinks - windowStart);
        if (forcedCount > budget)
            throw new ArgumentException($"budget {budget} cannot hold the {forcedCount} forced positions (current token, {forced.Sinks} sinks, window {forced.Window}).", nameof(budget));
    }

    /// <summary>The fewest thread groups a decode attention launch aims for: while a launch with each GQA group's heads
    /// in one thread group would have fewer, its heads are spread over more (see
    /// <see cref="DecodeAttentionKernel.HeadsPerBlockFor"/>; same bits either way). Defaults to the multiprocessor count;
    /// 0 keeps the heads together always (the benchmark and the tests compare both).</summary>
    public int AttentionGroups { get; set; }

    /// <summary>Whether top-k may run as one launch whose groups stay resident (taken only when the device holds its
    /// whole grid at once); false runs the four-launch path always. The verification command and the benchmark turn it
    /// off to check and time that path on the same device.</summary>
    public bool ResidentTopK { get; set; } = true;

    private void SelectTopK(TopKSelectKernel.Args args) => TopKSelectKernel.Launch(args,
        Scratch("topKCounters", DType.I32, TopKSelectKernel.CounterSize(args.Rows), zeroed: true).Cast<int>(),
        Scratch("topK", DType.I32, TopKSelectKernel.ScratchSize(args.Rows, args.N)).Cast<int>(), resident: ResidentTopK);

    /// <summary>
    /// A scratch view of at least <paramref name="count"/> elements, grown (never shrunk) on demand by at least half its
    /// size: scratch that follows the context (top-k's, Quest's) would otherwise be freed and reallocated on every
    /// step, and a free synchronizes the device, draining the launches queued ahead of it. With
    /// <paramref name="zeroed"/> it is cleared whenever it is allocated: for counters that kernels leave zero.
    /// </summary>
    private ArrayView<byte> Scratch(string name, DType type, long count, bool zeroed = false)
    {
        long bytes = Math.Max(count, 1) * type.SizeOf();
        if (!_scratch.TryGetValue(name, out var buffer) || buffer.Length < bytes)
        {
            long grown = buffer is null ? 0 : buffer.Length + buffer.Length / 2;
            buffer?.Dispose();
            _scratch[name] = buffer = _device.Allocate(Math.Max(Math.Max(bytes, grown), 256));
            if (zeroed) buffer.MemSetToZero();
        }
        return buffer.View;
    }

    private static GpuTensor Gpu(ITensor tensor) =>
        tensor as GpuTensor ?? throw new ArgumentException($"tensor belongs to another backend ({tensor.GetType().Name}).", nameof(tensor));

    private static int FormatOf(ITensor t) => t.DType switch
    {
        DType.F32 => Format.F32,
        DType.F16 => Format.F16,
        DType.BF16 => Format.BF16,
        _ => throw new ArgumentException($"{t.DType} is not a weight type.", nameof(t)),
    };

    private static ArrayView<float> F32(ITensor t, long count)
    {
        if (t.DType != DType.F32) throw new ArgumentException($"expected an F32 tensor, got {t.DType}.", nameof(t));
        if (t.Shape.ElementCount < count) throw new ArgumentException($"tensor {t.Shape} is smaller than {count} elements.", nameof(t));
        return Gpu(t).View.Cast<float>();
    }

    private static void CheckType<T>(ITensor t, string name) where T : unmanaged
    {
        if (DTypes.Of<T>() != t.DType) throw new ArgumentException($"tensor holds {t.DType}, not {typeof(T).Name}.", name);
    }

    private sealed class GpuTensor(MemoryBuffer1D<byte, Stride1D.Dense>? owner, ArrayView<byte> view, DType type, Shape shape) : ITensor
    {
        public ArrayView<byte> View { get; } = view;
        public DType DType { get; } = type;
        public Shape Shape { get; } = shape;

        public ITensor Slice(int start, int count)
        {
            if (Shape.Rank == 0 || start < 0 || count < 0 || start > Shape[0] - count)
                throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) of a tensor with shape {Shape}.");
            Span<int> dims = stackalloc int[Shape.Rank];
            Shape.Dims.CopyTo(dims);
            dims[0] = count;
            long rowBytes = Shape.Inner.ElementCount * DType.SizeOf();
            return new GpuTensor(null, View.SubView(start * rowBytes, Math.Max(count * rowBytes, 1)), DType, new Shape(dims));
        }

        public ITensor Reshape(Shape shape)
        {
            if (shape.ElementCount != Shape.ElementCount)
                throw new ArgumentException($"cannot reshape {Shape} ({Shape.ElementCount} elements) to {shape}.", nameof(shape));
            return new GpuTensor(null, View, DType, shape);
        }

        public void Dispose() => owner?.Dispose();
    }
}
