using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Core.Reference;
using Tidal.Core.Tensors;
using Tidal.Core.Tests;
using Tidal.Kernels.Accelerators;
using Tidal.Kernels.Kernels;

namespace Tidal.Kernels.Tests;

/// <summary>Attention longer than one split: the kernel's split-K partials and merge equal the reference's, bit for bit.</summary>
public sealed class SplitAttentionTests : IDisposable
{
    private readonly GpuBackend _backend = new(DeviceKind.Cpu);

    /// <summary>The 140000 case has 137 splits of 1024 (the largest): more than four per merge lane, so the merge's
    /// slots take several rounds.
    /// The 1025 case's last split holds only the cache's last position, with d = 8 (one chunk for four score lanes).
    /// With <paramref name="spread"/> every launch asks for more groups than it has, so a GQA group's heads run one per
    /// thread group (<see cref="GpuBackend.AttentionGroups"/>), not 2 or 4 sharing each load: the bits must not change.</summary>
    [Theory]
    [InlineData(700, 16, 2, 2, 600, false)]
    [InlineData(1100, 8, 1, 4, 513, false)]
    [InlineData(1200, 64, 1, 4, 1100, false)]
    [InlineData(140000, 8, 1, 2, 600, false)]
    [InlineData(1300, 128, 2, 4, 700, false)]
    [InlineData(1025, 8, 1, 1, 700, false)]
    [InlineData(600, 128, 1, 4, 300, true)]
    [InlineData(1100, 8, 1, 4, 513, true)]
    public void DenseAndGathered_AcrossSplits_EqualReferencePartialsMerged(int length, int d, int kvHeads, int group, int k, bool spread)
    {
        _backend.AttentionGroups = spread ? int.MaxValue : 0;
        int heads = kvHeads * group, split = Attention.DecodeSplitSize(Math.Min(length, k));
        var random = new Random(length);
        Half[] keys = TestData.Halves(random, kvHeads * length * d, 2f), values = TestData.Halves(random, kvHeads * length * d);
        float[] q = TestData.Floats(random, heads * d, 2f);
        var kv = new KvView<Half>(keys, values, kvHeads, length, d, length);
        using ITensor tk = _backend.Allocate(DType.F16, new Shape(kvHeads, length, d)), tv = _backend.Allocate(DType.F16, new Shape(kvHeads, length, d));
        using ITensor tq = _backend.Allocate(DType.F32, new Shape(heads, d)), output = _backend.Allocate(DType.F32, new Shape(heads, d));
        using ITensor logits = _backend.Allocate(DType.F32, new Shape(heads, length));
        _backend.Upload<Half>(keys, tk);
        _backend.Upload<Half>(values, tv);
        _backend.Upload<float>(q, tq);

        _backend.Attention(tq, tk, tv, length, output, logits);
        var expected = new float[heads * d];
        var expectedLogits = new float[heads * length];
        Attention.DecodeDense(q, kv, expected, expectedLogits);
        var got = new float[heads * d];
        _backend.Download<float>(output, got);
        TestData.AssertBitwiseEqual(expected, got, "dense split-K");
        var gotLogits = new float[heads * length];
        _backend.Download<float>(logits, gotLogits);
        TestData.AssertBitwiseEqual(expectedLogits, gotLogits, "logits");

        int[] indices = Enumerable.Range(0, kvHeads).SelectMany(_ => Enumerable.Range(0, length).OrderBy(_ => random.Next()).Take(k).Order()).ToArray();
        using ITensor ti = _backend.Allocate(DType.I32, new Shape(kvHeads, k));
        _backend.Upload<int>(indices, ti);
        _backend.SparseAttention(tq, tk, tv, length, ti, output);
        Attention.DecodeSparse(q, kv, indices, kvHeads, expected);
        _backend.Download<float>(output, got);
        TestData.AssertBitwiseEqual(expected, got, "gathered split-K");
        Assert.True(length > split && k > split, "both paths must span several splits");
    }

    /// <summary>Llama-3-8B's shape (32 heads, GQA groups of 4) on 132 SMs: k = 256 gives 4 splits, so 32 groups of four
    /// heads become 128 of one; 32 splits (dense attention at 8K) fill the device with four heads per group.</summary>
    [Theory]
    [InlineData(DecodeAttentionKernel.Modes.PerKvHead, 4, 4, 132, 1)]
    [InlineData(DecodeAttentionKernel.Modes.PerKvHead, 4, 16, 132, 2)]
    [InlineData(DecodeAttentionKernel.Modes.Range, 4, 32, 132, 4)]
    [InlineData(DecodeAttentionKernel.Modes.Range, 4, 4, 0, 4)]
    [InlineData(DecodeAttentionKernel.Modes.Shared, 6, 1, 0, 2)]
    [InlineData(DecodeAttentionKernel.Modes.PerQueryHead, 4, 1, 0, 1)]
    public void HeadsPerBlock_SpreadsHeadsOnlyWhileTheGridIsSmall(int mode, int group, int gridRows, int minGroups, int expected) =>
        Assert.Equal(expected, DecodeAttentionKernel.HeadsPerBlockFor(mode, 32 / group * group, group, gridRows, minGroups));

    /// <summary>Rows across the first change of split size (64 → 128 tokens at 4096 positions), so rows of one chunk
    /// differ in split size and split count, and the launch's grid holds rows that leave early.</summary>
    [Fact]
    public void Causal_AcrossSplitSizes_EqualsEachRowsDecodeAttention()
    {
        const int d = 8, kvHeads = 1, heads = 2, rows = 8, first = 4092, capacity = first + rows;
        Assert.True(Attention.DecodeSplitSize(first) < Attention.DecodeSplitSize(first + rows - 1));
        var random = new Random(5);
        Half[] keys = TestData.Halves(random, kvHeads * capacity * d, 2f), values = TestData.Halves(random, kvHeads * capacity * d);
        float[] q = TestData.Floats(random, rows * heads * d, 2f);
        using ITensor tk = _backend.Allocate(DType.F16, new Shape(kvHeads, capacity, d)), tv = _backend.Allocate(DType.F16, new Shape(kvHeads, capacity, d));
        using ITensor tq = _backend.Allocate(DType.F32, new Shape(rows, heads * d)), output = _backend.Allocate(DType.F32, new Shape(rows, heads * d));
        _backend.Upload<Half>(keys, tk);
        _backend.Upload<Half>(values, tv);
        _backend.Upload<float>(q, tq);
        _backend.CausalAttention(tq, tk, tv, first, output);
        var expected = new float[rows * heads * d];
        for (int r = 0; r < rows; r++)
            Attention.DecodeDense(q.AsSpan(r * heads * d, heads * d), new KvView<Half>(keys, values, kvHeads, capacity, d, first + r), expected.AsSpan(r * heads * d, heads * d));
        var got = new float[expected.Length];
        _backend.Download<float>(output, got);
        TestData.AssertBitwiseEqual(expected, got, "causal split-K");
    }

    public void Dispose() => _backend.Dispose();
}
