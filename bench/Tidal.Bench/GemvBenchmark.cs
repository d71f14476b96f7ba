using BenchmarkDotNet.Attributes;
using Tidal.Core.Reference;

namespace Tidal.Bench;

/// <summary>GEMV with a 4096×4096 F16 weight (a Llama-3-8B attention projection), F32 activations.</summary>
public class GemvBenchmark
{
    private const int N = 4096;
    private Half[] _weight = [];
    private float[] _x = [], _y = [];

    static GemvBenchmark() => BytesMoved.Register(nameof(GemvF16), (long)N * N * 2 + N * 4 * 2);

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        _weight = Enumerable.Range(0, N * N).Select(_ => (Half)(random.NextSingle() - 0.5f)).ToArray();
        _x = Enumerable.Range(0, N).Select(_ => random.NextSingle()).ToArray();
        _y = new float[N];
    }

    [Benchmark]
    public void GemvF16() => Linear.MatVec<Half>(_weight, _x, _y);
}
