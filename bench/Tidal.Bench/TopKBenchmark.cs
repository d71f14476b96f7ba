using BenchmarkDotNet.Attributes;
using Tidal.Core.Reference;

namespace Tidal.Bench;

/// <summary>Top-k selection per query head: 32 heads × 8K logits, budget 256 (a TidalDecode selection layer).</summary>
public class TopKBenchmark
{
    private const int Heads = 32, Context = 8192, Budget = 256;
    private float[] _logits = [];
    private int[] _indices = [];

    static TopKBenchmark() => BytesMoved.Register(nameof(TopKPerHead8K), (long)Heads * Context * 4);

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        _logits = Enumerable.Range(0, Heads * Context).Select(_ => random.NextSingle() * 40 - 20).ToArray();
        _indices = new int[Heads * Budget];
    }

    [Benchmark]
    public void TopKPerHead8K() => TopK.SelectPerQueryHead(_logits, Heads, Budget, _indices);
}
