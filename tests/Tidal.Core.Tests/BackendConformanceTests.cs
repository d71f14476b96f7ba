using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Core.Backends;
using Tidal.Core.Reference;
using Tidal.Core.Tensors;

namespace Tidal.Core.Tests;

/// <summary>
/// One suite for every <see cref="IBackend"/>: each operation, driven through the interface, must reproduce the
/// reference op called directly, bit for bit (top-k sets identical). Subclass per backend.
/// </summary>
public abstract class BackendConformanceTests
{
    protected abstract IBackend CreateBackend();

    public static Gen<AttentionTests.Problem> SmallProblems =>
        from kvHeads in Gen.Choose(1, 2) from groupSize in Gen.Choose(1, 4) from d in Gen.Elements(8, 16, 24, 40)
        from length in Gen.Choose(1, 80) from seed in TestData.Seed
        select new AttentionTests.Problem(kvHeads, groupSize, d, length + 3, length, seed);

    private static ITensor Put<T>(IBackend backend, T[] data, params int[] dims) where T : unmanaged
    {
        ITensor t = backend.Allocate(DTypes.Of<T>(), new Shape(dims));
        backend.Upload<T>(data, t);
        return t;
    }

    private static float[] Get(IBackend backend, ITensor t)
    {
        var result = new float[t.Shape.ElementCount];
        backend.Download<float>(t, result);
        return result;
    }

    [Property(MaxTest = 12)]
    public Property Sample_DrawsTheReferenceToken() =>
        Prop.ForAll(Gen.Choose(1, 3000).ToArbitrary(), TestData.Seed.ToArbitrary(), (n, seed) =>
        {
            using IBackend backend = CreateBackend();
            var random = new Random(seed);
            float[] logits = TestData.Floats(random, n, 12f);
            if (n > 3) logits[random.Next(n)] = float.NaN;
            using ITensor t = Put(backend, logits, n);
            foreach ((float temperature, float topP) in new[] { (0f, 1f), (1f, 1f), (0.7f, 0.9f), (1.6f, 0.3f), (0.25f, 0.02f) })
                for (long step = 0; step < 3; step++)
                    Assert.Equal(Sampling.Sample(logits, temperature, topP, (ulong)seed, step), backend.Sample(t, temperature, topP, (ulong)seed, step));
        });

    [Property(MaxTest = 15)]
    public Property LayerOps_MatchTheReference_Bitwise() =>
        Prop.ForAll(Gen.Choose(1, 40).ToArbitrary(), TestData.Seed.ToArbitrary(), (n, seed) =>
        {
            using IBackend backend = CreateBackend();
            var random = new Random(seed);
            float[] x = TestData.Floats(random, n, 3f);
            BFloat16[] w = TestData.BFloat16s(random, n);
            Half[] matrix = TestData.Halves(random, 2 * n * n);
            using ITensor tx = Put(backend, x, n), tw = Put(backend, w, n), tm = Put(backend, matrix, 2 * n, n);
            using ITensor ty = backend.Allocate(DType.F32, new Shape(n)), tz = backend.Allocate(DType.F32, new Shape(2 * n));

            backend.RmsNorm(tx, tw, 1e-5f, ty);
            var y = new float[n];
            RmsNorm.Apply<BFloat16>(x, w, 1e-5f, y);
            TestData.AssertBitwiseEqual(y, Get(backend, ty), "rmsnorm");

            backend.MatMul(tm, ty, tz);
            var z = new float[2 * n];
            Linear.MatVec<Half>(matrix, y, z);
            TestData.AssertBitwiseEqual(z, Get(backend, tz), "matvec");

            backend.SwiGlu(tz.Slice(0, n), tz.Slice(n, n), ty);
            Elementwise.SwiGlu(z.AsSpan(0, n), z.AsSpan(n, n), y);
            TestData.AssertBitwiseEqual(y, Get(backend, ty), "swiglu");

            backend.AddInPlace(tx, ty);
            Elementwise.AddInPlace(x, y);
            TestData.AssertBitwiseEqual(x, Get(backend, tx), "residual");

            backend.Embed(tm, 3 % (2 * n), ty);
            Elementwise.Embed<Half>(matrix, 3 % (2 * n), y);
            TestData.AssertBitwiseEqual(y, Get(backend, ty), "embed");
            Assert.Equal(Elementwise.Argmax(y), backend.Argmax(ty));
        });

    /// <summary>Batched matmul over every weight dtype, widths with several chunks per lane (cols &gt; 256), widths that
    /// are not multiples of 8 (element-wise loads), row counts that leave a partial block, batches of several items.</summary>
    [Property(MaxTest = 10)]
    public Property MatMul_MatchesTheReference_Bitwise() =>
        Prop.ForAll((from rows in Gen.Choose(1, 37) from cols in Gen.Choose(1, 700) from batch in Gen.Choose(1, 3)
                     from type in Gen.Elements(DType.F32, DType.F16, DType.BF16) select (rows, cols, batch, type)).ToArbitrary(),
            TestData.Seed.ToArbitrary(), (shape, seed) => CheckMatMul(shape.rows, shape.cols, shape.batch, shape.type, seed));

    /// <summary>Decode-sized batches with aligned widths (a backend may keep several batches of chunks in flight per
    /// lane): from one chunk to several full batches of 4 × 32 chunks, ending in partial batches.</summary>
    [Property(MaxTest = 10)]
    public Property MatMul_OfAlignedRows_MatchesTheReference_Bitwise() =>
        Prop.ForAll((from rows in Gen.Choose(1, 37) from chunks in Gen.Choose(1, 420) from batch in Gen.Choose(1, 3)
                     from type in Gen.Elements(DType.F32, DType.F16, DType.BF16) select (rows, cols: 8 * chunks, batch, type)).ToArbitrary(),
            TestData.Seed.ToArbitrary(), (shape, seed) => CheckMatMul(shape.rows, shape.cols, shape.batch, shape.type, seed));

    /// <summary>Wide aligned rows, up to Llama-3-8B's MLP width (14336 columns: many batches of chunks per lane), with few
    /// rows.</summary>
    [Property(MaxTest = 4)]
    public Property MatMul_OfWideRows_MatchesTheReference_Bitwise() =>
        Prop.ForAll((from rows in Gen.Choose(1, 9) from chunks in Gen.Choose(700, 1800) from batch in Gen.Choose(1, 2)
                     from type in Gen.Elements(DType.F16, DType.BF16) select (rows, cols: 8 * chunks, batch, type)).ToArbitrary(),
            TestData.Seed.ToArbitrary(), (shape, seed) => CheckMatMul(shape.rows, shape.cols, shape.batch, shape.type, seed));

    /// <summary>Prefill-sized batches (a backend may tile them: several weight rows × several items per warp) with
    /// aligned widths (from part of one column of 32 chunks to several pairs of columns, ending in either half of a
    /// pair), row counts and batches that leave partial tiles.</summary>
    [Property(MaxTest = 8)]
    public Property MatMul_OfBatches_MatchesTheReference_Bitwise() =>
        Prop.ForAll((from rows in Gen.Choose(1, 37) from chunks in Gen.Choose(1, 200) from batch in Gen.Choose(4, 11)
                     from type in Gen.Elements(DType.F32, DType.F16, DType.BF16) select (rows, cols: 8 * chunks, batch, type)).ToArbitrary(),
            TestData.Seed.ToArbitrary(), (shape, seed) => CheckMatMul(shape.rows, shape.cols, shape.batch, shape.type, seed));

    private void CheckMatMul(int rows, int cols, int batch, DType type, int seed)
    {
        using IBackend backend = CreateBackend();
        var random = new Random(seed);
        float[] x = TestData.Floats(random, batch * cols), w = TestData.Floats(random, rows * cols), expected = new float[batch * rows];
        using ITensor tx = Put(backend, x, batch, cols), ty = backend.Allocate(DType.F32, new Shape(batch, rows));
        ITensor tw;
        switch (type)
        {
            case DType.F16: tw = Put(backend, w.Select(f => (Half)f).ToArray(), rows, cols); Linear.MatMul<Half>(w.Select(f => (Half)f).ToArray(), x, expected, batch); break;
            case DType.BF16: tw = Put(backend, w.Select(f => (BFloat16)f).ToArray(), rows, cols); Linear.MatMul<BFloat16>(w.Select(f => (BFloat16)f).ToArray(), x, expected, batch); break;
            default: tw = Put(backend, w, rows, cols); Linear.MatMul<float>(w, x, expected, batch); break;
        }
        using (tw) backend.MatMul(tw, tx, ty);
        TestData.AssertBitwiseEqual(expected, Get(backend, ty), $"matmul {type} {rows}x{cols}, batch {batch}");
    }

    /// <summary>A chunk's causal attention, rows read from fused QKV rows, equals each row's decode attention.</summary>
    [Property(MaxTest = 8)]
    public Property CausalAttention_EqualsEachRowsDecodeAttention_Bitwise() =>
        Prop.ForAll(SmallProblems.ToArbitrary(), Gen.Choose(1, 12).ToArbitrary(), (p, rows) =>
        {
            using IBackend backend = CreateBackend();
            int d = p.HeadDim, cap = p.Length + rows, width = (p.Heads + 2 * p.KvHeads) * d, first = p.Length;
            var random = new Random(p.Seed);
            Half[] k = TestData.Halves(random, p.KvHeads * cap * d, 2f), v = TestData.Halves(random, k.Length);
            float[] q = TestData.Floats(random, rows * width, 2f);
            using ITensor keys = Put(backend, k, p.KvHeads, cap, d), values = Put(backend, v, p.KvHeads, cap, d), tq = Put(backend, q, rows, width);
            using ITensor output = backend.Allocate(DType.F32, new Shape(rows, p.Heads * d));
            backend.CausalAttention(tq, keys, values, first, output);
            var expected = new float[rows * p.Heads * d];
            for (int r = 0; r < rows; r++)
                Attention.DecodeDense(q.AsSpan(r * width, p.Heads * d), new KvView<Half>(k, v, p.KvHeads, cap, d, first + r), expected.AsSpan(r * p.Heads * d, p.Heads * d));
            TestData.AssertBitwiseEqual(expected, Get(backend, output), "causal attention");
            Assert.Throws<ArgumentException>(() => backend.CausalAttention(tq, keys, values, first + 2, output)); // the last row would pass the cache
        });

    /// <summary>A chunk's row operations (RMSNorm, RoPE at consecutive positions, KV append, page bounds) in one call
    /// each equal the reference applied row by row; chunks start mid-page and cross pages.</summary>
    [Property(MaxTest = 6)]
    public Property ChunkRowOps_MatchTheReference_RowByRow_Bitwise() =>
        Prop.ForAll((from rows in Gen.Choose(1, 40) from kvHeads in Gen.Choose(1, 3) from d in Gen.Elements(8, 16, 40)
                     from first in Gen.Choose(0, 40) from seed in TestData.Seed select (rows, kvHeads, d, first, seed)).ToArbitrary(), c =>
        {
            var (rows, kvHeads, d, first, seed) = c;
            using IBackend backend = CreateBackend();
            var random = new Random(seed);
            int width = kvHeads * d, cap = first + rows + 5, pages = Quest.PageCount(cap);

            float[] x = TestData.Floats(random, rows * width, 3f), y = new float[x.Length];
            BFloat16[] w = TestData.BFloat16s(random, width);
            using ITensor tx = Put(backend, x, rows, width), tw = Put(backend, w, width), ty = backend.Allocate(DType.F32, new Shape(rows, width));
            backend.RmsNorm(tx, tw, 1e-5f, ty);
            for (int r = 0; r < rows; r++) RmsNorm.Apply<BFloat16>(x.AsSpan(r * width, width), w, 1e-5f, y.AsSpan(r * width, width));
            TestData.AssertBitwiseEqual(y, Get(backend, ty), "rmsnorm rows");

            var rope = new RopeTable(d, 10000f, cap);
            using ITensor cos = Put(backend, rope.CosTable.ToArray(), cap, d / 2), sin = Put(backend, rope.SinTable.ToArray(), cap, d / 2);
            float[] k = TestData.Floats(random, rows * width), v = TestData.Floats(random, rows * width);
            using ITensor tk = Put(backend, k, rows, kvHeads, d), tv = Put(backend, v, rows, kvHeads, d);
            backend.Rope(tk, cos, sin, first, RopeLayout.HalfSplit);
            for (int r = 0; r < rows; r++) rope.Apply(k.AsSpan(r * width, width), first + r, RopeLayout.HalfSplit);
            TestData.AssertBitwiseEqual(k, Get(backend, tk), "rope rows");

            using ITensor keys = backend.Allocate(DType.F16, new Shape(kvHeads, cap, d)), values = backend.Allocate(DType.F16, new Shape(kvHeads, cap, d));
            using ITensor min = backend.Allocate(DType.F32, new Shape(kvHeads, pages, d)), max = backend.Allocate(DType.F32, new Shape(kvHeads, pages, d));
            var refMin = new float[kvHeads * pages * d];
            var refMax = new float[refMin.Length];
            // Positions before the chunk fill the first page partly, so the chunk folds into bounds it did not start.
            float[] before = TestData.Floats(random, width);
            using ITensor tb = Put(backend, before, kvHeads, d);
            for (int t = first - first % Quest.PageSize; t < first; t++)
            {
                backend.UpdatePageBounds(tb, t, min, max);
                Quest.UpdatePageBounds<float>(before, t, kvHeads, refMin, refMax);
            }
            backend.AppendKv(keys, values, tk, tv, first);
            backend.UpdatePageBounds(tk, first, min, max);
            for (int r = 0; r < rows; r++) Quest.UpdatePageBounds<float>(k.AsSpan(r * width, width), first + r, kvHeads, refMin, refMax);
            TestData.AssertBitwiseEqual(refMin, Get(backend, min), "page min rows");
            TestData.AssertBitwiseEqual(refMax, Get(backend, max), "page max rows");
            var gotK = new Half[kvHeads * cap * d];
            var gotV = new Half[gotK.Length];
            backend.Download<Half>(keys, gotK);
            backend.Download<Half>(values, gotV);
            for (int r = 0; r < rows; r++)
                for (int i = 0; i < width; i++)
                {
                    int at = ((i / d) * cap + first + r) * d + i % d;
                    Assert.Equal((Half)k[r * width + i], gotK[at]);
                    Assert.Equal((Half)v[r * width + i], gotV[at]);
                }
            Assert.ThrowsAny<ArgumentException>(() => backend.AppendKv(keys, values, tk, tv, cap - rows + 1)); // the last row would pass the cache
            Assert.ThrowsAny<ArgumentException>(() => backend.Rope(tk, cos, sin, cap - rows + 1, RopeLayout.HalfSplit));
        });

    [Property(MaxTest = 15)]
    public Property AttentionSelectionAndQuest_MatchTheReference_Bitwise() =>
        Prop.ForAll(SmallProblems.ToArbitrary(), p =>
        {
            using IBackend backend = CreateBackend();
            int d = p.HeadDim, cap = p.Capacity;
            var rope = new RopeTable(d, 10000f, cap);
            using ITensor cos = Put(backend, rope.CosTable.ToArray(), cap, d / 2), sin = Put(backend, rope.SinTable.ToArray(), cap, d / 2);
            using ITensor keys = backend.Allocate(DType.F16, new Shape(p.KvHeads, cap, d)), values = backend.Allocate(DType.F16, new Shape(p.KvHeads, cap, d));
            int pages = Quest.PageCount(cap);
            using ITensor min = backend.Allocate(DType.F32, new Shape(p.KvHeads, pages, d)), max = backend.Allocate(DType.F32, new Shape(p.KvHeads, pages, d));
            var refK = new Half[p.KvHeads * cap * d];
            var refV = new Half[refK.Length];
            var refMin = new float[p.KvHeads * pages * d];
            var refMax = new float[refMin.Length];
            var random = new Random(p.Seed);
            for (int t = 0; t < p.Length; t++) // append with RoPE, as decode does
            {
                float[] k = TestData.Floats(random, p.KvHeads * d), v = TestData.Floats(random, p.KvHeads * d);
                using ITensor tk = Put(backend, k, p.KvHeads, d), tv = Put(backend, v, p.KvHeads, d);
                backend.Rope(tk, cos, sin, t, RopeLayout.HalfSplit);
                backend.AppendKv(keys, values, tk, tv, t);
                backend.UpdatePageBounds(tk, t, min, max);
                rope.Apply(k, t, RopeLayout.HalfSplit);
                TestData.AssertBitwiseEqual(k, Get(backend, tk), "rope");
                for (int h = 0; h < p.KvHeads; h++)
                    for (int i = 0; i < d; i++)
                    {
                        refK[(h * cap + t) * d + i] = (Half)k[h * d + i];
                        refV[(h * cap + t) * d + i] = (Half)v[h * d + i];
                    }
                Quest.UpdatePageBounds<float>(k, t, p.KvHeads, refMin, refMax);
            }
            var refKv = new KvView<Half>(refK, refV, p.KvHeads, cap, d, p.Length);
            using ITensor q = Put(backend, p.Q, p.Heads, d), output = backend.Allocate(DType.F32, new Shape(p.Heads, d));
            using ITensor logits = backend.Allocate(DType.F32, new Shape(p.Heads, cap));
            backend.Attention(q, keys, values, p.Length, output, logits);
            var expected = new float[p.Heads * d];
            var expectedLogits = new float[p.Heads * p.Length];
            Attention.DecodeDense(p.Q, refKv, expected, expectedLogits);
            TestData.AssertBitwiseEqual(expected, Get(backend, output), "dense attention");
            TestData.AssertBitwiseEqual(expectedLogits, Get(backend, logits).AsSpan(0, expectedLogits.Length), "logits");

            int budget = Math.Max(2, p.Length / 3), k2 = Math.Min(budget, p.Length);
            foreach (int groups in new[] { p.Heads, p.KvHeads })
            {
                using ITensor indices = backend.Allocate(DType.I32, new Shape(groups, k2));
                backend.SelectTopK(logits, p.Length, budget, new ForcedTokens(Sinks: 1), indices);
                var expectedIndices = new int[groups * k2];
                if (groups == p.Heads) TopK.SelectPerQueryHead(expectedLogits, p.Heads, budget, expectedIndices, new ForcedTokens(Sinks: 1));
                else TopK.SelectPerKvHead(expectedLogits, p.Heads, groups, budget, expectedIndices, new ForcedTokens(Sinks: 1));
                var gotIndices = new int[expectedIndices.Length];
                backend.Download<int>(indices, gotIndices);
                Assert.Equal(expectedIndices, gotIndices);

                backend.SparseAttention(q, keys, values, p.Length, indices, output);
                Attention.DecodeSparse(p.Q, refKv, expectedIndices, groups, expected);
                TestData.AssertBitwiseEqual(expected, Get(backend, output), "sparse attention");
            }

            TestData.AssertBitwiseEqual(refMin, Get(backend, min), "quest min");
            TestData.AssertBitwiseEqual(refMax, Get(backend, max), "quest max");
            int count = Quest.SelectedTokenCount(p.Length, 2);
            using ITensor pagesIdx = backend.Allocate(DType.I32, new Shape(p.Heads, count));
            backend.SelectPages(q, min, max, p.Length, 2, pagesIdx);
            var scores = new float[p.Heads * Quest.PageCount(p.Length)];
            Quest.ScorePages(p.Q, p.Heads, p.KvHeads, refMin, refMax, p.Length, scores);
            var got = new int[p.Heads * count];
            backend.Download<int>(pagesIdx, got);
            var tokens = new int[2 * Quest.PageSize];
            for (int h = 0; h < p.Heads; h++)
            {
                int c = Quest.SelectTokens(scores.AsSpan(h * Quest.PageCount(p.Length), Quest.PageCount(p.Length)), 2, p.Length, tokens);
                Assert.Equal(c, count);
                Assert.Equal(tokens.Take(c), got.Skip(h * count).Take(c));
            }
        });
}

public sealed class CpuBackendTests : BackendConformanceTests
{
    protected override IBackend CreateBackend() => new CpuBackend();
}

public sealed class CpuBackendCacheTypeTests
{
    [Fact]
    public void KeepsKvCachesInF32OrF16_AndNamesF16()
    {
        using var exact = new CpuBackend();
        using var half = new CpuBackend(DType.F16);
        Assert.Equal(DType.F32, exact.KvCacheType);
        Assert.Equal(DType.F16, half.KvCacheType);
        Assert.Contains("F16 KV cache", half.Name);
        Assert.DoesNotContain("KV cache", exact.Name);
        Assert.Contains("BF16", Assert.Throws<ArgumentException>(() => new CpuBackend(DType.BF16)).Message);
    }
}
