using Tidal.Bench.Gpu;
using Tidal.Kernels;
using Tidal.Kernels.Accelerators;

// GPU (CUDA) verification and benchmarks; stage with ../shared/device/prepare bench/Tidal.Bench.Gpu/Tidal.Bench.Gpu.csproj.
//   verify                 every kernel against the CPU reference on Llama-3-8B shapes (bit-exactness report)
//   engine MODEL_DIR [N]   tidal-tiny greedy decoding on GPU vs CPU for N steps (default 256), per policy
//   gpu [profile [N]]      kernel timings vs the peak read bandwidth measured in the same run (profile: each op twice
//                          at one context length, 32K unless N is given, for ncu or nsys)
//   layer CONTEXT [BUDGET] decode-step time per Llama-3-8B-shaped layer: dense vs selection vs sparse
//   ptx DIR KERNEL...      the PTX of kernels for sm_90, for ptxas/cuobjdump off-line (no GPU needed; see PtxDump)
const string usage = "usage: Tidal.Bench.Gpu verify | engine MODEL_DIR [STEPS] | gpu [profile [N]] | layer CONTEXT [BUDGET] | ptx DIR Class:Method[:Threads:Groups][@TypeArg[,TypeArg]]...";
switch (args)
{
    case ["verify"]:
        using (var gpu = new GpuBackend(DeviceKind.Cuda)) return GpuVerify.Run(gpu);
    case ["engine", var model, .. var n]:
        using (var gpu = new GpuBackend(DeviceKind.Cuda)) return GpuEngineCheck.Run(gpu, model, n is [var s] ? int.Parse(s) : 256);
    case ["gpu", .. var rest]:
        using (var gpu = new GpuBackend(DeviceKind.Cuda)) return GpuBenchmarks.Run(gpu, rest switch { ["profile"] => 32768, ["profile", var n] => int.Parse(n), _ => 0 });
    case ["layer", var context, .. var b]:
        using (var gpu = new GpuBackend(DeviceKind.Cuda)) return GpuLayerBenchmark.Run(gpu, int.Parse(context), b is [var k] ? int.Parse(k) : 2048);
    case ["ptx", var directory, .. var kernels] when kernels.Length > 0:
        return PtxDump.Run(directory, kernels);
    default:
        Console.Error.WriteLine(usage);
        return 2;
}
