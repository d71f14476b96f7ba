using BenchmarkDotNet.Attributes;
using Tidal.Core.Reference;

namespace Tidal.Bench;

/// <summary>
/// A prefill chunk through a projection: 128 tokens (DecodeState's default chunk) times a 4096×4096 F16 weight
/// (a Llama-3-8B attention projection). Compute-bound: 2 · 4096² · 128 = 4.3 GFLOP per call.
/// </summary>
public class MatMulBenchmark
{
    private const int N = 4096, Batch = 128;
    private Half[] _weight = [];
    private float[] _x = [], _y = [];

    static MatMulBenchmark() => BytesMoved.Register(nameof(MatMulF16Batch128), (long)N * N * 2 + (long)N * Batch * 4 * 2);

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        _weight = Enumerable.Range(0, N * N).Select(_ => (Half)(random.NextSingle() - 0.5f)).ToArray();
        _x = Enumerable.Range(0, N * Batch).Select(_ => random.NextSingle()).ToArray();
        _y = new float[N * Batch];
    }

    [Benchmark]
    public void MatMulF16Batch128() => Linear.MatMul<Half>(_weight, _x, _y, Batch);
}
