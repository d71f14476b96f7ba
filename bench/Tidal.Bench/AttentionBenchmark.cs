using BenchmarkDotNet.Attributes;
using Tidal.Core.Reference;

namespace Tidal.Bench;

/// <summary>Dense decode attention, Llama-3-8B shape: 32 query heads, 8 KV heads, d = 128, 8K context, F16 cache.</summary>
public class AttentionBenchmark
{
    private const int Heads = 32, KvHeads = 8, D = 128, Context = 8192;
    private Half[] _keys = [], _values = [];
    private float[] _q = [], _output = [];

    static AttentionBenchmark() => BytesMoved.Register(nameof(DenseAttention8K), 2L * KvHeads * Context * D * 2);

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        _keys = Enumerable.Range(0, KvHeads * Context * D).Select(_ => (Half)(random.NextSingle() - 0.5f)).ToArray();
        _values = Enumerable.Range(0, KvHeads * Context * D).Select(_ => (Half)(random.NextSingle() - 0.5f)).ToArray();
        _q = Enumerable.Range(0, Heads * D).Select(_ => random.NextSingle() - 0.5f).ToArray();
        _output = new float[Heads * D];
    }

    [Benchmark]
    public void DenseAttention8K() =>
        Attention.Dense(_q, new KvView<Half>(_keys, _values, KvHeads, Context, D, Context), _output);
}
