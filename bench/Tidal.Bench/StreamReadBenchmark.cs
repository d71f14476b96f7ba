using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;

namespace Tidal.Bench;

/// <summary>
/// The machine's read bandwidth: every core sums its share of a 512 MiB buffer with 32-byte vector loads
/// and four independent accumulators (no arithmetic bound), the ceiling every bandwidth-bound op is compared with.
/// </summary>
public class StreamReadBenchmark
{
    private const int Floats = 128 << 20; // 512 MiB: far beyond any cache
    private float[] _data = [];

    static StreamReadBenchmark() => BytesMoved.Register(nameof(StreamRead), (long)Floats * sizeof(float));

    [GlobalSetup]
    public void Setup()
    {
        _data = new float[Floats];
        new Random(1).NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_data.AsSpan()));
        for (int i = 0; i < _data.Length; i++) if (!float.IsFinite(_data[i])) _data[i] = 0;
    }

    [Benchmark]
    public float StreamRead()
    {
        int blocks = Environment.ProcessorCount;
        var partial = new float[blocks];
        Parallel.For(0, blocks, b =>
        {
            ReadOnlySpan<float> span = _data.AsSpan(Floats / blocks * b, Floats / blocks);
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int i = 0; i + 32 <= span.Length; i += 32)
            {
                a0 += Vector256.Create(span.Slice(i, 8));
                a1 += Vector256.Create(span.Slice(i + 8, 8));
                a2 += Vector256.Create(span.Slice(i + 16, 8));
                a3 += Vector256.Create(span.Slice(i + 24, 8));
            }
            partial[b] = Vector256.Sum(a0 + a1 + a2 + a3);
        });
        return partial.Sum();
    }
}
