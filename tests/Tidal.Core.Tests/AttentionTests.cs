using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Core.Reference;

namespace Tidal.Core.Tests;

public class AttentionTests
{
    /// <summary>An attention problem: GQA geometry, cache, queries.</summary>
    public sealed record Problem(int KvHeads, int Group, int HeadDim, int Capacity, int Length, int Seed)
    {
        public int Heads => KvHeads * Group;
        public float[] Q { get; } = TestData.Floats(new Random(Seed + 1), KvHeads * Group * HeadDim, 2f);
        public Half[] K { get; } = TestData.Halves(new Random(Seed + 2), KvHeads * Capacity * HeadDim, 2f);
        public Half[] V { get; } = TestData.Halves(new Random(Seed + 3), KvHeads * Capacity * HeadDim);
        public KvView<Half> Kv() => new(K, V, KvHeads, Capacity, HeadDim, Length);
    }

    public static Gen<Problem> Problems =>
        from kvHeads in Gen.Choose(1, 3) from groupSize in Gen.Choose(1, 4) from d in Gen.Elements(4, 8, 12, 64, 72)
        from length in Gen.Choose(1, 300) from extra in Gen.Choose(0, 5) from seed in TestData.Seed
        select new Problem(kvHeads, groupSize, d, length + extra, length, seed);

    /// <summary>Double-precision attention of query head h over the given positions.</summary>
    private static (double[] Output, double Lse, double[] Logits) Oracle(Problem p, int h, IReadOnlyList<int> positions)
    {
        int d = p.HeadDim, kvh = h / p.Group;
        double scale = 1 / Math.Sqrt(d);
        double[] s = positions.Select(t => Enumerable.Range(0, d).Sum(i => (double)p.Q[h * d + i] * (float)p.K[(kvh * p.Capacity + t) * d + i]) * scale).ToArray();
        double m = s.Max();
        double[] e = s.Select(v => Math.Exp(v - m)).ToArray();
        double sum = e.Sum();
        var o = new double[d];
        for (int j = 0; j < positions.Count; j++)
            for (int i = 0; i < d; i++) o[i] += e[j] / sum * (float)p.V[(kvh * p.Capacity + positions[j]) * d + i];
        return (o, m + Math.Log(sum), s);
    }

    [Property(MaxTest = 60)]
    public Property Dense_MatchesDoubleOracle_AndWritesTheLogits() =>
        Prop.ForAll(Problems.ToArbitrary(), p =>
        {
            var output = new float[p.Heads * p.HeadDim];
            var logits = new float[p.Heads * p.Length];
            Attention.Dense(p.Q, p.Kv(), output, logits);
            for (int h = 0; h < p.Heads; h++)
            {
                var (o, _, s) = Oracle(p, h, Enumerable.Range(0, p.Length).ToList());
                // Logit errors come from the canonical dot (|q·k| ≤ Σ|q_i k_i| ≤ 4·d here) and the scale multiply; each
                // moves the softmax weights by at most that much relative, and the outputs (|v| ≤ 1) by as much plus the
                // token-axis sum's γ_(n/32+6): bound = 2·(logit error + sum error).
                double logitError = TestData.DotBound(p.HeadDim, 4.0 * p.HeadDim) + 2 * TestData.Eps * 4 * p.HeadDim;
                double outError = 2 * (logitError + (p.Length / 32 + 8) * TestData.Eps) * 2;
                for (int j = 0; j < p.Length; j++)
                    Assert.True(Math.Abs(logits[h * p.Length + j] - s[j]) <= logitError, $"logit {h},{j}");
                TestData.AssertClose(o, output.AsSpan(h * p.HeadDim, p.HeadDim), Enumerable.Repeat(outError, p.HeadDim).ToArray(), $"head {h}");
            }
        });

    [Property(MaxTest = 60)]
    public Property SparseOverEveryPosition_EqualsDense_Bitwise() =>
        Prop.ForAll(Problems.ToArbitrary(), p =>
        {
            var dense = new float[p.Heads * p.HeadDim];
            var denseLse = new float[p.Heads];
            Attention.Partial(p.Q, p.Kv(), 0, p.Length, dense, denseLse);
            int[] all = Enumerable.Range(0, p.Length).ToArray();
            var perQ = new float[dense.Length];
            var perQLse = new float[p.Heads];
            Attention.SparsePerQueryHead(p.Q, p.Kv(), Enumerable.Repeat(all, p.Heads).SelectMany(a => a).ToArray(), p.Length, perQ, perQLse);
            var perKv = new float[dense.Length];
            Attention.SparsePerKvHead(p.Q, p.Kv(), Enumerable.Repeat(all, p.KvHeads).SelectMany(a => a).ToArray(), p.Length, perKv);
            TestData.AssertBitwiseEqual(dense, perQ, "per-q-head sparse");
            TestData.AssertBitwiseEqual(denseLse, perQLse, "per-q-head lse");
            TestData.AssertBitwiseEqual(dense, perKv, "per-kv-head sparse");
        });

    [Property(MaxTest = 60)]
    public Property Sparse_MatchesOracleOverTheIndexSet() =>
        Prop.ForAll(Problems.ToArbitrary(), p =>
        {
            var random = new Random(p.Seed);
            int k = 1 + random.Next(p.Length);
            int[] indices = Enumerable.Range(0, p.KvHeads).SelectMany(_ => Enumerable.Range(0, p.Length).OrderBy(_ => random.Next()).Take(k).Order()).ToArray();
            var output = new float[p.Heads * p.HeadDim];
            Attention.SparsePerKvHead(p.Q, p.Kv(), indices, k, output);
            for (int h = 0; h < p.Heads; h++)
            {
                var (o, _, _) = Oracle(p, h, indices.Skip(h / p.Group * k).Take(k).ToList());
                double bound = 4 * (TestData.DotBound(p.HeadDim, 4.0 * p.HeadDim) + (k / 32 + 8) * TestData.Eps);
                TestData.AssertClose(o, output.AsSpan(h * p.HeadDim, p.HeadDim), Enumerable.Repeat(bound, p.HeadDim).ToArray(), $"head {h}");
            }
        });

    [Property(MaxTest = 60)]
    public Property SplitK_MergedWithLse_EqualsUnsplit_WithinTolerance() =>
        Prop.ForAll(Problems.ToArbitrary(), Gen.Choose(1, 7).ToArbitrary(), (p, splits) =>
        {
            int n = p.Length, hd = p.Heads * p.HeadDim;
            var outputs = new float[splits * hd];
            var lses = new float[splits * p.Heads];
            for (int s = 0; s < splits; s++)
            {
                int start = n * s / splits, end = n * (s + 1) / splits; // some splits may be empty
                Attention.Partial(p.Q, p.Kv(), start, end - start, outputs.AsSpan(s * hd, hd), lses.AsSpan(s * p.Heads, p.Heads));
            }
            var merged = new float[hd];
            var mergedLse = new float[p.Heads];
            Attention.MergeStates(outputs, lses, merged, mergedLse);
            var dense = new float[hd];
            var denseLse = new float[p.Heads];
            Attention.Partial(p.Q, p.Kv(), 0, n, dense, denseLse);
            // Both are within the oracle tolerance of the exact result; the merge adds Exp/Log (2 ulp each) and one fma
            // and divide per split: 1e-5 absolute covers |v| ≤ 1 outputs and lse values of magnitude < 50.
            for (int i = 0; i < hd; i++) Assert.True(Math.Abs(merged[i] - dense[i]) <= 1e-5, $"output {i}: {merged[i]} vs {dense[i]}");
            for (int h = 0; h < p.Heads; h++) Assert.True(Math.Abs(mergedLse[h] - denseLse[h]) <= 1e-5 * Math.Max(1, Math.Abs(denseLse[h])), $"lse {h}");
        });

    [Fact]
    public void MergeOfEmptySplits_IsTheEmptyState()
    {
        var output = new float[4];
        var lse = new float[1];
        Attention.MergeStates(new float[8], [float.NegativeInfinity, float.NegativeInfinity], output, lse);
        Assert.Equal(new float[4], output);
        Assert.Equal(float.NegativeInfinity, lse[0]);
    }

    [Fact]
    public void BadGeometry_ThrowsNamingTheArgument()
    {
        var k = new Half[2 * 4 * 8];
        KvView<Half> Kv() => new(k, k, 2, 4, 8, 3);
        Assert.Equal("q", Assert.Throws<ArgumentException>(() => Attention.Dense(new float[3 * 8], Kv(), new float[24])).ParamName); // 3 heads over 2 KV heads
        Assert.Equal("q", Assert.Throws<ArgumentException>(() => Attention.Dense(new float[0], Kv(), new float[0])).ParamName); // zero heads
        Assert.Equal("output", Assert.Throws<ArgumentException>(() => Attention.Dense(new float[16], Kv(), new float[8])).ParamName);
        Assert.Equal("indices", Assert.Throws<ArgumentException>(() => Attention.SparsePerKvHead(new float[16], Kv(), [0, 3], 1, new float[16])).ParamName);
        Assert.Equal("k", Assert.Throws<ArgumentException>(() => Attention.SparsePerKvHead(new float[16], Kv(), new int[8], 4, new float[16])).ParamName); // k > n
        Assert.Equal("kvHeads", Assert.Throws<ArgumentException>(() => new KvView<Half>(k, k, 0, 4, 8, 3)).ParamName);
        Assert.Equal("length", Assert.Throws<ArgumentException>(() => new KvView<Half>(k, k, 2, 4, 8, 5)).ParamName);
        Assert.Equal("keys", Assert.Throws<ArgumentException>(() => new KvView<Half>(new Half[3], k, 2, 4, 8, 3)).ParamName);
    }
}

public class DecodeSplitTests
{
    [Theory]
    [InlineData(1300)]
    [InlineData(513)]
    public void DecodeSplitK_AgreesWithUnsplitAttention_AndGatheredOverEveryPositionEqualsDense(int length)
    {
        var p = new AttentionTests.Problem(2, 2, 16, length, length, length);
        var dense = new float[p.Heads * p.HeadDim];
        var logits = new float[p.Heads * length];
        Attention.DecodeDense(p.Q, p.Kv(), dense, logits);
        var unsplit = new float[dense.Length];
        var unsplitLogits = new float[logits.Length];
        Attention.Dense(p.Q, p.Kv(), unsplit, unsplitLogits);
        TestData.AssertBitwiseEqual(unsplitLogits, logits, "logits are the same per position");
        // Same tolerance as the split-K property test: the merge adds Exp/Log and one fma and divide per split.
        for (int i = 0; i < dense.Length; i++) Assert.True(Math.Abs(dense[i] - unsplit[i]) <= 1e-5, $"output {i}");
        int[] all = Enumerable.Range(0, p.KvHeads).SelectMany(_ => Enumerable.Range(0, length)).ToArray();
        var gathered = new float[dense.Length];
        Attention.DecodeSparse(p.Q, p.Kv(), all, p.KvHeads, gathered);
        TestData.AssertBitwiseEqual(dense, gathered, "gathered over every position");
    }
}

public class CausalAttentionTests
{
    /// <summary>Attention.Causal's rows against each row's own DecodeDense, bit for bit (the oracle is the decode
    /// attention that AttentionTests holds to a double-precision oracle).</summary>
    private static void Check<T>(T[] k, T[] v, float[] q, int kvHeads, int heads, int d, int capacity, int first, int rows, int stride)
        where T : unmanaged
    {
        var got = new float[rows * heads * d];
        Attention.Causal(q, stride, new KvView<T>(k, v, kvHeads, capacity, d, first + rows - 1), first, rows, got);
        var expected = new float[got.Length];
        for (int r = 0; r < rows; r++)
            Attention.DecodeDense(q.AsSpan(r * stride, heads * d), new KvView<T>(k, v, kvHeads, capacity, d, first + r), expected.AsSpan(r * heads * d, heads * d));
        TestData.AssertBitwiseEqual(expected, got, $"causal {typeof(T).Name} rows {rows} from {first}, d {d}, {heads}/{kvHeads} heads");
    }

    /// <summary>Rows of several blocks of eight (the last one partial), prefixes of one to several splits, head
    /// dimensions with a partial last chunk or fewer than four chunks, queries read from wider (fused QKV) rows.</summary>
    [Property(MaxTest = 40)]
    public Property Causal_EqualsEachRowsDecodeAttention_Bitwise() =>
        Prop.ForAll((from kvHeads in Gen.Choose(1, 3) from groupSize in Gen.Choose(1, 4) from d in Gen.Elements(4, 12, 16, 40, 64)
                     from first in Gen.Choose(1, 300) from rows in Gen.Choose(1, 30) from seed in TestData.Seed
                     select (kvHeads, groupSize, d, first, rows, seed)).ToArbitrary(), c =>
        {
            int heads = c.kvHeads * c.groupSize, capacity = c.first + c.rows + 2, stride = (heads + 2 * c.kvHeads) * c.d;
            var random = new Random(c.seed);
            float[] q = TestData.Floats(random, c.rows * stride, 2f);
            float[] kf = TestData.Floats(random, c.kvHeads * capacity * c.d, 2f), vf = TestData.Floats(random, kf.Length);
            Check(kf, vf, q, c.kvHeads, heads, c.d, capacity, c.first, c.rows, stride);
            Check(kf.Select(x => (Half)x).ToArray(), vf.Select(x => (Half)x).ToArray(), q, c.kvHeads, heads, c.d, capacity, c.first, c.rows, stride);
        });

    /// <summary>A chunk across the first change of split size (64 → 128 positions at 4096): its rows split
    /// differently, so one block runs row by row and the next as a block of a new split size.</summary>
    [Fact]
    public void Causal_AcrossSplitSizes_EqualsEachRowsDecodeAttention()
    {
        const int kvHeads = 2, heads = 4, d = 64, first = 4090, rows = 20, capacity = first + rows;
        Assert.True(Attention.DecodeSplitSize(first) < Attention.DecodeSplitSize(first + rows - 1));
        var random = new Random(9);
        Check(TestData.Floats(random, kvHeads * capacity * d, 2f), TestData.Floats(random, kvHeads * capacity * d),
            TestData.Floats(random, rows * heads * d, 2f), kvHeads, heads, d, capacity, first, rows, heads * d);
    }
}

public class DecodeSplitSizeTests
{
    [Theory]
    [InlineData(10, 64)]
    [InlineData(4096, 128)]
    [InlineData(8192, 256)]
    [InlineData(16383, 256)]
    [InlineData(16384, 512)]
    [InlineData(32767, 512)]
    [InlineData(32768, 1024)]
    [InlineData(131072, 1024)]
    public void IsCountOver32_RoundedDownToAPowerOfTwo_Within64To1024(int count, int expected) =>
        Assert.Equal(expected, Attention.DecodeSplitSize(count));
}
