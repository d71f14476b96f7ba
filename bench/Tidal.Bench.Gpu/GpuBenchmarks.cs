using System.Diagnostics;
using ILGPU;
using Half = System.Half;
using ILGPU.Runtime;
using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Core.Reference;
using Tidal.Core.Tensors;
using Tidal.Kernels;
using Tidal.Kernels.Kernels;

namespace Tidal.Bench.Gpu;

/// <summary>
/// `gpu`: kernel timings on Llama-3-8B shapes (32 q heads, 8 KV heads, d = 128, batch 1) next to the peak read
/// bandwidth measured in the same run by a plain 16-byte streaming kernel. Times are the mean over many launches
/// after warm-up (host stopwatch around launches + one synchronize).
/// </summary>
public static class GpuBenchmarks
{
    private static double _peak;
    private static bool _profile;

    /// <summary>Runs the benchmarks; with a <paramref name="profileLength"/> each op runs twice at that context length,
    /// for a profiler.</summary>
    public static int Run(GpuBackend gpu, int profileLength = 0)
    {
        bool profile = _profile = profileLength > 0;
        Console.WriteLine($"gpu benchmarks: {gpu.Name}");
        Accelerator acc = gpu.Accelerator;
        _peak = StreamRead(acc);
        Console.WriteLine($"{"kernel",-46} {"time",10} {"GB/s",8} {"% peak",7}");
        Report("stream read 4 GiB (16-byte loads)", 4L << 30, 1e3 * (4L << 30) / (_peak * 1e9));

        const int heads = 32, kvHeads = 8, d = 128;
        var random = new Random(1);
        ITensor Fill(DType type, params int[] dims)
        {
            ITensor t = gpu.Allocate(type, new Shape(dims));
            long n = t.Shape.ElementCount;
            if (type == DType.F16) gpu.Upload<Half>(Enumerable.Range(0, (int)n).Select(_ => (Half)(random.NextSingle() - 0.5f)).ToArray(), t);
            else if (type == DType.F32) gpu.Upload<float>(Enumerable.Range(0, (int)n).Select(_ => random.NextSingle() - 0.5f).ToArray(), t);
            return t;
        }

        using (ITensor q = Fill(DType.F32, heads, d), o = gpu.Allocate(DType.F32, new Shape(heads, d)))
        {
            foreach (int n in profile ? [profileLength] : new[] { 8192, 32768, 131072 })
            {
                using ITensor k = Fill(DType.F16, kvHeads, n, d), v = Fill(DType.F16, kvHeads, n, d);
                long bytes = 2L * kvHeads * n * d * 2;
                ForEachHeadBlock(gpu, DecodeAttentionKernel.Modes.Range, heads, heads / kvHeads, n, suffix =>
                    Report($"dense attention @ {n / 1024}K{suffix}", bytes, Time(acc, () => gpu.Attention(q, k, v, n, o))));
                if (n != (profile ? profileLength : 131072)) continue;
                foreach (int budget in profile ? [2048] : new[] { 256, 1024, 2048, 4096 })
                {
                    foreach (int rows in new[] { kvHeads, heads })
                    {
                        int[] idx = Enumerable.Range(0, rows).SelectMany(_ => Enumerable.Range(0, n).OrderBy(_ => random.Next()).Take(budget).Order()).ToArray();
                        using ITensor it = gpu.Allocate(DType.I32, new Shape(rows, budget));
                        gpu.Upload<int>(idx, it);
                        long sparseBytes = 2L * rows * budget * d * 2 + (long)rows * budget * 4;
                        int mode = rows == heads ? DecodeAttentionKernel.Modes.PerQueryHead : DecodeAttentionKernel.Modes.PerKvHead;
                        ForEachHeadBlock(gpu, mode, heads, heads / kvHeads, budget, suffix =>
                            Report($"sparse attention k={budget} ({(rows == heads ? "per q head" : "per kv head")}{suffix})", sparseBytes, Time(acc, () => gpu.SparseAttention(q, k, v, n, it, o))));
                    }
                }
                using ITensor logits = Fill(DType.F32, heads, n);
                // Top-k as one resident launch (where the device holds its grid) and as four launches, in the same run.
                foreach (bool resident in new[] { true, false })
                    foreach (int groups in new[] { heads, kvHeads })
                    {
                        using ITensor sel = gpu.Allocate(DType.I32, new Shape(groups, 2048));
                        gpu.ResidentTopK = resident;
                        Report($"top-k 32x128K -> {groups}x2048{(resident ? "" : " 4 launches")}", (long)heads * n * 4, Time(acc, () => gpu.SelectTopK(logits, n, 2048, default, sel)));
                        gpu.ResidentTopK = true;
                    }
            }
        }
        foreach ((int rows, int cols) in new[] { (14336, 4096), (4096, 14336) })
        {
            using ITensor w = Fill(DType.F16, rows, cols), x = Fill(DType.F32, cols), y = gpu.Allocate(DType.F32, new Shape(rows));
            Report($"gemv F16 {rows}x{cols}", (long)rows * cols * 2, Time(acc, () => gpu.MatMul(w, x, y)));
        }
        // Prefill's projections: one chunk of 32 tokens, as a GEMV per token (the batch as the grid's fast axis, weights
        // shared through L2) and as the register-tiled matmul that GpuBackend.MatMul runs for batches.
        var matVec = new MatVecKernel(acc);
        var matMul = new MatMulKernel(acc);
        const int chunk = 32;
        foreach ((int rows, int cols) in new[] { (14336, 4096), (4096, 14336) })
        {
            using var w = acc.Allocate1D<byte>((long)rows * cols * 2);
            using var x = acc.Allocate1D<float>((long)chunk * cols);
            using var y = acc.Allocate1D<float>((long)chunk * rows);
            w.MemSetToZero();
            x.MemSetToZero();
            long fmas = (long)rows * cols * chunk;
            ReportFlops($"matmul F16 {rows}x{cols} x{chunk} as GEMVs", fmas, Time(acc, () => matVec.Launch(w.View, Format.F16, x.View, y.View, rows, cols, chunk)));
            ReportFlops($"matmul F16 {rows}x{cols} x{chunk} tiled", fmas, Time(acc, () => matMul.Launch(w.View, Format.F16, x.View, y.View, rows, cols, chunk)));
        }
        return 0;
    }

    /// <summary>Runs <paramref name="time"/> once per distinct heads-per-thread-group choice (for <paramref name="count"/>
    /// tokens) among the backend's default <see cref="GpuBackend.AttentionGroups"/>, 0 (heads
    /// kept together) and twice the default, default first; rows are labelled by heads per group where choices differ.</summary>
    private static void ForEachHeadBlock(GpuBackend gpu, int mode, int heads, int group, int count, Action<string> time)
    {
        int standard = gpu.AttentionGroups, splits = DecodeAttentionKernel.SplitCount(count, Attention.DecodeSplitSize(count));
        int HeadsPerBlock(int groups) => DecodeAttentionKernel.HeadsPerBlockFor(mode, heads, group, splits, groups);
        int[] choices = new[] { standard, 0, 2 * standard }.DistinctBy(HeadsPerBlock).ToArray();
        foreach (int groups in choices)
        {
            gpu.AttentionGroups = groups;
            time(choices.Length == 1 ? "" : $", {HeadsPerBlock(groups)} heads/group");
        }
        gpu.AttentionGroups = standard;
    }

    private static void ReportFlops(string name, long fmas, double ms) =>
        Console.WriteLine($"{name,-46} {ms * 1000,8:F1} us {2 * fmas / (ms * 1e9),8:F1} TFLOP/s");

    private static void Report(string name, long bytes, double ms)
    {
        double gbps = bytes / (ms * 1e6);
        Console.WriteLine($"{name,-46} {ms * 1000,8:F1} us {gbps,8:F0} {100 * gbps / _peak,6:F0}%");
    }

    /// <summary>Mean milliseconds per call: warm-up, then enough calls for ≥ 200 ms, synchronising once.</summary>
    private static double Time(Accelerator acc, Action op)
    {
        if (_profile) { op(); op(); acc.Synchronize(); return double.NaN; }
        for (int i = 0; i < 3; i++) op();
        acc.Synchronize();
        var sw = Stopwatch.StartNew();
        op();
        acc.Synchronize();
        int reps = (int)Math.Clamp(200 / Math.Max(sw.Elapsed.TotalMilliseconds, 1e-3), 5, 2000);
        sw.Restart();
        for (int i = 0; i < reps; i++) op();
        acc.Synchronize();
        return sw.Elapsed.TotalMilliseconds / reps;
    }

    /// <summary>GB/s of a grid-stride read of 4 GiB with 16-byte loads (the ceiling for bandwidth-bound kernels).</summary>
    private static double StreamRead(Accelerator acc)
    {
        long bytes = 4L << 30;
        using var buffer = acc.Allocate1D<U4>(bytes / 16);
        buffer.MemSetToZero();
        using var sink = acc.Allocate1D<uint>(1 << 20);
        var kernel = acc.LoadStreamKernel<ArrayView<U4>, ArrayView<uint>>(StreamKernel);
        int groups = acc.NumMultiprocessors * 8;
        double ms = Time(acc, () => kernel(new KernelConfig(groups, 256), buffer.View, sink.View));
        return bytes / (ms * 1e6);
    }

    private static void StreamKernel(ArrayView<U4> data, ArrayView<uint> sink)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        uint x = 0;
        for (long i = Grid.GlobalIndex.X; i < data.Length; i += stride)
        {
            U4 v = data[i];
            x ^= v.X ^ v.Y ^ v.Z ^ v.W;
        }
        if (x == 0x12345678) sink[Grid.GlobalIndex.X % sink.IntLength] = x; // keeps the loads alive
    }
}
