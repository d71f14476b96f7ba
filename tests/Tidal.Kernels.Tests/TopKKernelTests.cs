using ILGPU;
using ILGPU.Runtime;
using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Core.Reference;
using Tidal.Core.Tensors;
using Tidal.Kernels.Accelerators;
using Tidal.Kernels.Kernels;

namespace Tidal.Kernels.Tests;

/// <summary>Top-k over more positions than one chunk (4096), with heavy ties, equals the reference's set, whether the
/// threshold bucket's candidates fit in shared memory or are read from global memory.</summary>
public sealed class TopKKernelTests : IDisposable
{
    private readonly GpuBackend _backend = new(DeviceKind.Cpu);

    /// <summary>Uniform scores; scores from four values (ties across whole buckets); or 256 values that share their
    /// keys' top 24 bits (only the last radix digit tells them apart).</summary>
    private static float[] Scores(int count, int seed, string kind)
    {
        var random = new Random(seed);
        float[] pool = [-1f, 0f, 0.5f, 2f];
        return Enumerable.Range(0, count).Select(_ => kind switch
        {
            "ties" => pool[random.Next(pool.Length)],
            "near" => BitConverter.Int32BitsToSingle(0x3F80_0000 + random.Next(256)),
            _ => random.NextSingle() * 10,
        }).ToArray();
    }

    [Theory]
    [InlineData(5000, 300, "ties")]
    [InlineData(9000, 1000, "uniform")]
    public void LongRows_SelectTheReferenceSet(int n, int budget, string kind)
    {
        float[] logits = Scores(2 * n, n, kind);
        using ITensor l = _backend.Allocate(DType.F32, new Shape(2, n)), idx = _backend.Allocate(DType.I32, new Shape(2, budget));
        _backend.Upload<float>(logits, l);
        var forced = new ForcedTokens(3, 5);
        _backend.SelectTopK(l, n, budget, forced, idx);
        var got = new int[2 * budget];
        _backend.Download<int>(idx, got);
        var expected = new int[2 * budget];
        TopK.SelectPerQueryHead(logits, 2, budget, expected, forced);
        Assert.Equal(expected, got);
    }

    /// <summary>Per KV head over rows of several log-sum-exp groups (9000 logits: 18 blocks of 512, 5 groups of 4 blocks
    /// per head), twice with other scores: each head's last group merges its blocks and leaves its ticket zero, or the
    /// second selection's merge would not run.</summary>
    [Fact]
    public void PerKvHead_LongRows_SelectTheReferenceSet_Twice()
    {
        const int heads = 4, kvHeads = 2, n = 9000, budget = 700;
        var forced = new ForcedTokens(2, 4);
        using ITensor l = _backend.Allocate(DType.F32, new Shape(heads, n)), idx = _backend.Allocate(DType.I32, new Shape(kvHeads, budget));
        for (int seed = 1; seed <= 2; seed++)
        {
            float[] logits = Scores(heads * n, seed, "uniform");
            _backend.Upload<float>(logits, l);
            _backend.SelectTopK(l, n, budget, forced, idx);
            var got = new int[kvHeads * budget];
            _backend.Download<int>(idx, got);
            var expected = new int[kvHeads * budget];
            TopK.SelectPerKvHead(logits, heads, kvHeads, budget, expected, forced);
            Assert.Equal(expected, got);
        }
    }

    /// <summary>More keys share the threshold's 24-bit prefix than the refining group keeps in shared memory: it reads
    /// the candidates from global memory in its radix passes (with ties, also in its passes over positions). The
    /// counters are zero again afterwards, as the next selection needs them.</summary>
    [Theory]
    [InlineData(4500, 700, "ties", 0)]
    [InlineData(4500, 200, "near", 16)]
    public void CandidatesBeyondSharedMemory_SelectTheReferenceSet(int n, int budget, string kind, int sharedCandidates)
    {
        Accelerator acc = _backend.Accelerator;
        var kernel = new TopKSelectKernel(acc);
        float[] scores = Scores(n, n + 1, kind);
        using var input = acc.Allocate1D(scores);
        using var output = acc.Allocate1D<int>(budget);
        using var counters = acc.Allocate1D<int>(TopKSelectKernel.CounterSize(1));
        using var scratch = acc.Allocate1D<int>(TopKSelectKernel.ScratchSize(1, n));
        counters.MemSetToZero();
        var forced = new ForcedTokens(2, 3);
        kernel.Launch(new TopKSelectKernel.Args { Scores = input.View, Output = output.View, N = n, K = budget, Sinks = forced.Sinks, Window = forced.Window, Rows = 1 },
            counters.View, scratch.View, sharedCandidates, resident: false);
        var expected = new int[budget];
        TopK.Select(scores, budget, expected, forced);
        Assert.Equal(expected, output.GetAsArray1D());
        Assert.All(counters.GetAsArray1D(), c => Assert.Equal(0, c));
    }

    public void Dispose() => _backend.Dispose();
}
