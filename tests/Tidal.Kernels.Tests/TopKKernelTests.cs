using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Core.Reference;
using Tidal.Core.Tensors;
using Tidal.Kernels.Accelerators;

namespace Tidal.Kernels.Tests;

/// <summary>Top-k over more positions than one compaction tile (4096), with heavy ties, equals the reference's set.</summary>
public sealed class TopKKernelTests : IDisposable
{
    private readonly GpuBackend _backend = new(DeviceKind.Cpu);

    [Theory]
    [InlineData(5000, 300, true)]
    [InlineData(9000, 1000, false)]
    public void LongRows_SelectTheReferenceSet(int n, int budget, bool ties)
    {
        var random = new Random(n);
        float[] pool = [-1f, 0f, 0.5f, 2f];
        float[] logits = Enumerable.Range(0, 2 * n).Select(_ => ties ? pool[random.Next(pool.Length)] : random.NextSingle() * 10).ToArray();
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

    public void Dispose() => _backend.Dispose();
}
