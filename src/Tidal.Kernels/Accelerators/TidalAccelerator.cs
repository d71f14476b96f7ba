using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Tidal.Kernels.Accelerators;

/// <summary>
/// An ILGPU context and accelerator set up for Tidal's kernels: O2 (global loads, uniform-branch analysis), default
/// math mode (correctly rounded division and square root: the kernels must match the reference bit for bit), and
/// ILGPU.Algorithms enabled. The CPU accelerator uses 32-wide warps so warp code runs as on an NVIDIA GPU.
/// </summary>
public sealed class TidalAccelerator : IDisposable
{
    private TidalAccelerator(Context context, Accelerator accelerator)
    {
        Context = context;
        Accelerator = accelerator;
    }

    /// <summary>The ILGPU context.</summary>
    public Context Context { get; }

    /// <summary>The accelerator the kernels run on.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>True when running on CUDA.</summary>
    public bool IsCuda => Accelerator.AcceleratorType == AcceleratorType.Cuda;

    /// <summary>A one-line description, e.g. "CUDA: NVIDIA H100 80GB HBM3 (SM_90, 132 SMs)".</summary>
    public string Description => IsCuda
        ? $"CUDA: {Accelerator.Name} ({((CudaAccelerator)Accelerator).Architecture}, {Accelerator.NumMultiprocessors} SMs)"
        : $"ILGPU CPU accelerator ({Accelerator.WarpSize}-wide warps)";

    /// <summary>Creates the accelerator <paramref name="kind"/> asks for.</summary>
    /// <exception cref="InvalidOperationException">CUDA was requested but libcuda cannot be loaded or reports no device
    /// (ILGPU itself would silently offer none).</exception>
    public static TidalAccelerator Create(DeviceKind kind = DeviceKind.Auto)
    {
        Context context = Context.Create(builder =>
        {
            builder.Optimize(OptimizationLevel.O2).EnableAlgorithms();
            if (kind != DeviceKind.Cpu) builder.Cuda();
            // 16 warps: groups of 512 threads, as decode attention launches for d = 128, so CI tests that variant too.
            builder.CPU(new CPUDevice(32, 16, 1));
        });
        try
        {
            Device? device = kind == DeviceKind.Cpu || context.GetCudaDevices().Count == 0 ? null : context.GetCudaDevices()[0];
            if (device is null && kind == DeviceKind.Cuda)
                throw new InvalidOperationException("CUDA was requested, but no CUDA device is usable: libcuda could not be loaded or reports no devices (check the NVIDIA driver and LD_LIBRARY_PATH).");
            device ??= context.GetCPUDevices()[0];
            return new TidalAccelerator(context, device.CreateAccelerator(context));
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>Allocates <paramref name="bytes"/> bytes of device memory.</summary>
    /// <exception cref="InsufficientMemoryException">The device cannot hold them; the message gives requested and free sizes.</exception>
    public MemoryBuffer1D<byte, Stride1D.Dense> Allocate(long bytes)
    {
        try
        {
            return Accelerator.Allocate1D<byte>(Math.Max(bytes, 16));
        }
        catch (Exception e) when (e is OutOfMemoryException or AcceleratorException)
        {
            long free = IsCuda ? ((CudaAccelerator)Accelerator).GetFreeMemory() : GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            throw new InsufficientMemoryException($"{Description}: cannot allocate {bytes:N0} bytes ({bytes / 1048576.0:F1} MiB); {free / 1048576.0:F1} MiB free of {Accelerator.MemorySize / 1048576.0:F1} MiB.", e);
        }
    }

    /// <summary>Frees the accelerator and context.</summary>
    public void Dispose()
    {
        Accelerator.Dispose();
        Context.Dispose();
    }
}
