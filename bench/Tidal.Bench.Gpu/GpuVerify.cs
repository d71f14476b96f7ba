using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Core.Reference;
using Tidal.Core.Tensors;
using Tidal.Kernels;

namespace Tidal.Bench.Gpu;

/// <summary>
/// `verify`: every GPU kernel against the CPU reference on realistic (Llama-3-8B) shapes, through the same IBackend
/// calls. Prints, per kernel, the max abs and rel error and how many outputs match bit for bit; index sets must match.
/// </summary>
public static class GpuVerify
{
    public static int Run(GpuBackend gpu)
    {
        var cpu = new CpuBackend();
        Console.WriteLine($"verify: {gpu.Name} vs {cpu.Name}");
        Console.WriteLine($"{"kernel",-44} {"outputs",9} {"bitwise",9} {"max abs",10} {"max rel",10}");
        var random = new Random(1);
        bool ok = true;

        float[] Floats(int n, float scale = 1f) => Enumerable.Range(0, n).Select(_ => (random.NextSingle() * 2 - 1) * scale).ToArray();
        Half[] Halves(int n, float scale = 1f) => Floats(n, scale).Select(f => (Half)f).ToArray();
        BFloat16[] BF16s(int n, float scale = 1f) => Floats(n, scale).Select(f => (BFloat16)f).ToArray();

        ITensor Put<T>(IBackend b, T[] data, params int[] dims) where T : unmanaged
        {
            ITensor t = b.Allocate(DTypes.Of<T>(), new Shape(dims));
            b.Upload<T>(data, t);
            return t;
        }
        float[] Get(IBackend b, ITensor t)
        {
            var r = new float[t.Shape.ElementCount];
            b.Download<float>(t, r);
            return r;
        }
        int[] GetInts(IBackend b, ITensor t)
        {
            var r = new int[t.Shape.ElementCount];
            b.Download<int>(t, r);
            return r;
        }
        void Compare(string name, Func<IBackend, float[]> run)
        {
            float[] expected = run(cpu), got = run(gpu);
            int same = 0;
            double maxAbs = 0, maxRel = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                if (BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(got[i])) same++;
                double abs = Math.Abs((double)expected[i] - got[i]);
                maxAbs = Math.Max(maxAbs, abs);
                maxRel = Math.Max(maxRel, abs / Math.Max(Math.Abs((double)expected[i]), 1e-30));
            }
            ok &= same == expected.Length;
            Console.WriteLine($"{name,-44} {expected.Length,9} {same,9} {maxAbs,10:E2} {maxRel,10:E2}");
        }
        void CompareSets(string name, Func<IBackend, int[]> run)
        {
            int[] expected = run(cpu), got = run(gpu);
            bool equal = expected.SequenceEqual(got);
            ok &= equal;
            Console.WriteLine($"{name,-44} {expected.Length,9} {(equal ? "identical" : "DIFFERENT"),9}");
        }

        Half[] w16 = Halves(4096 * 4096, 0.05f);
        float[] x = Floats(14336);
        Compare("gemv F16 4096x4096", b => { using var w = Put(b, w16, 4096, 4096); using var xv = Put(b, x[..4096], 4096); using var y = b.Allocate(DType.F32, new Shape(4096)); b.MatMul(w, xv, y); return Get(b, y); });
        BFloat16[] wb = BF16s(4096 * 14336, 0.05f);
        Compare("gemv BF16 4096x14336", b => { using var w = Put(b, wb, 4096, 14336); using var xv = Put(b, x, 14336); using var y = b.Allocate(DType.F32, new Shape(4096)); b.MatMul(w, xv, y); return Get(b, y); });
        float[] w32 = Floats(1000 * 1003);
        float[] x32 = Floats(4 * 1003);
        Compare("matmul F32 1000x1003, batch 4 (unaligned)", b => { using var w = Put(b, w32, 1000, 1003); using var xv = Put(b, x32, 4, 1003); using var y = b.Allocate(DType.F32, new Shape(4, 1000)); b.MatMul(w, xv, y); return Get(b, y); });
        float[] chunk = Floats(37 * 4096);
        Compare("matmul F16 4096x4096, batch 32 (tiled)", b => { using var w = Put(b, w16, 4096, 4096); using var xv = Put(b, chunk[..(32 * 4096)], 32, 4096); using var y = b.Allocate(DType.F32, new Shape(32, 4096)); b.MatMul(w, xv, y); return Get(b, y); });
        Compare("matmul BF16 4096x14336, batch 10 (tiled)", b => { using var w = Put(b, wb, 4096, 14336); using var xv = Put(b, chunk[..(10 * 14336)], 10, 14336); using var y = b.Allocate(DType.F32, new Shape(10, 4096)); b.MatMul(w, xv, y); return Get(b, y); });
        Compare("matmul F32 1000x1000, batch 37 (tiled)", b => { using var w = Put(b, w32[..1000000], 1000, 1000); using var xv = Put(b, chunk[..37000], 37, 1000); using var y = b.Allocate(DType.F32, new Shape(37, 1000)); b.MatMul(w, xv, y); return Get(b, y); });
        BFloat16[] norm = BF16s(4096, 2f);
        Compare("rmsnorm 4096 (BF16 weight)", b => { using var xv = Put(b, x[..4096], 4096); using var w = Put(b, norm, 4096); using var y = b.Allocate(DType.F32, new Shape(4096)); b.RmsNorm(xv, w, 1e-5f, y); return Get(b, y); });
        var rope = new RopeTable(128, 500000f, 8192, new RopeScaling(8f, 1f, 4f, 8192));
        float[] qkv = Floats(32 * 128, 3f);
        foreach (RopeLayout layout in Enum.GetValues<RopeLayout>())
            Compare($"rope 32x128 at 5000 ({layout})", b => { using var t = Put(b, qkv, 32, 128); using var c = Put(b, rope.CosTable.ToArray(), 8192, 64); using var s = Put(b, rope.SinTable.ToArray(), 8192, 64); b.Rope(t, c, s, 5000, layout); return Get(b, t); });
        float[] gate = Floats(14336, 8f), up = Floats(14336, 2f);
        Compare("swiglu 14336", b => { using var g = Put(b, gate, 14336); using var u = Put(b, up, 14336); using var o = b.Allocate(DType.F32, new Shape(14336)); b.SwiGlu(g, u, o); return Get(b, o); });
        Compare("residual add 4096", b => { using var a = Put(b, gate[..4096], 4096); using var c = Put(b, up[..4096], 4096); b.AddInPlace(a, c); return Get(b, a); });

        const int kvHeads = 8, heads = 32, d = 128, cap = 8192;
        Half[] keys = Halves(kvHeads * cap * d, 2f), values = Halves(kvHeads * cap * d);
        float[] q = Floats(heads * d, 2f);
        float[] newK = Floats(kvHeads * d), newV = Floats(kvHeads * d);
        foreach (int length in new[] { 300, 4096, 8192 })
        {
            Compare($"append + dense attention 32/8/128 @ {length}", b =>
            {
                using var k = Put(b, keys, kvHeads, cap, d); using var v = Put(b, values, kvHeads, cap, d);
                using var nk = Put(b, newK, kvHeads, d); using var nv = Put(b, newV, kvHeads, d);
                b.AppendKv(k, v, nk, nv, length - 1);
                using var qt = Put(b, q, heads, d); using var o = b.Allocate(DType.F32, new Shape(heads, d)); using var l = b.Allocate(DType.F32, new Shape(heads, cap));
                b.Attention(qt, k, v, length, o, l);
                return [.. Get(b, o), .. Get(b, l).AsSpan(0, heads * length).ToArray()];
            });
        }
        const int width = (heads + 2 * kvHeads) * d; // causal rows read from fused QKV rows, as prefill does
        foreach ((int first, int rows) in new[] { (1, 32), (4080, 32), (8161, 32) })
        {
            float[] qRows = Floats(rows * width, 2f);
            Compare($"causal attention 32/8/128, rows {first}..{first + rows - 1}", b =>
            {
                using var k = Put(b, keys, kvHeads, cap, d); using var v = Put(b, values, kvHeads, cap, d);
                using var qt = Put(b, qRows, rows, width); using var o = b.Allocate(DType.F32, new Shape(rows, heads * d));
                b.CausalAttention(qt, k, v, first, o);
                return Get(b, o);
            });
        }
        foreach ((int rows, int kk) in new[] { (heads, 1024), (kvHeads, 2048), (1, 700) })
        {
            int[] idx = Enumerable.Range(0, rows).SelectMany(_ => Enumerable.Range(0, cap).OrderBy(_ => random.Next()).Take(kk).Order()).ToArray();
            Compare($"sparse attention, {rows} index rows, k={kk}", b =>
            {
                using var k = Put(b, keys, kvHeads, cap, d); using var v = Put(b, values, kvHeads, cap, d);
                using var qt = Put(b, q, heads, d); using var it = Put(b, idx, rows, kk); using var o = b.Allocate(DType.F32, new Shape(heads, d));
                b.SparseAttention(qt, k, v, cap, it, o);
                return Get(b, o);
            });
        }
        float[] logits = Floats(heads * 8192, 30f);
        foreach (int groups in new[] { heads, kvHeads, 1 })
            CompareSets($"top-k 32x8192, k=256, {groups} sets (sinks 4)", b =>
            {
                using var l = Put(b, logits, heads, 8192); using var idx = b.Allocate(DType.I32, new Shape(groups, 256));
                b.SelectTopK(l, 8192, 256, new ForcedTokens(4, 8), idx);
                return GetInts(b, idx);
            });
        // Long rows: uniform scores put ~8K keys in the threshold's bucket (more than Refine keeps in shared memory);
        // scores from a pool of four values tie across whole buckets (the threshold's ties go by position).
        const int longRow = 131072;
        float[] uniform = Floats(heads * longRow), tied = Floats(heads * longRow).Select(v => MathF.Round(v * 2f) / 2f).ToArray();
        // Both top-k paths: the one-launch resident one (where the device holds its grid) and the four launches.
        foreach (bool resident in new[] { true, false })
            foreach ((string kind, float[] scores) in new[] { ("uniform", uniform), ("5-valued", tied) })
                foreach (int groups in new[] { heads, kvHeads })
                    CompareSets($"top-k 32x128K {kind}, k=2048, {groups} sets{(resident ? "" : ", 4 launches")}", b =>
                    {
                        var onGpu = b as GpuBackend;
                        if (onGpu != null) onGpu.ResidentTopK = resident;
                        using var l = Put(b, scores, heads, longRow); using var idx = b.Allocate(DType.I32, new Shape(groups, 2048));
                        b.SelectTopK(l, longRow, 2048, new ForcedTokens(4, 64), idx);
                        if (onGpu != null) onGpu.ResidentTopK = true;
                        return GetInts(b, idx);
                    });
        int pages = Quest.PageCount(cap);
        float[] qmin = Floats(kvHeads * pages * d, 2f), qmax = qmin.Select(v => v + 1f).ToArray();
        int count = Quest.SelectedTokenCount(8000, 64);
        CompareSets("quest pages @ 8000, 64 pages", b =>
        {
            using var mn = Put(b, qmin, kvHeads, pages, d); using var mx = Put(b, qmax, kvHeads, pages, d); using var qt = Put(b, q, heads, d);
            using var idx = b.Allocate(DType.I32, new Shape(heads, count));
            b.SelectPages(qt, mn, mx, 8000, 64, idx);
            return GetInts(b, idx);
        });
        float[] vocab = Floats(128256, 20f);
        CompareSets("argmax 128256", b => { using var l = Put(b, vocab, 128256); return [b.Argmax(l)]; });
        Console.WriteLine(ok ? "verify: all kernels bit-exact" : "verify: MISMATCH");
        return ok ? 0 : 1;
    }
}
