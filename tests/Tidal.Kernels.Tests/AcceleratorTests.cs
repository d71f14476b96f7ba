using ILGPU;
using ILGPU.Runtime.Cuda;
using Tidal.Kernels.Accelerators;

namespace Tidal.Kernels.Tests;

/// <summary>Accelerator management: the choice of device, the refusal when CUDA is asked for and absent, and
/// out-of-memory as an exception that names the sizes.</summary>
public sealed class AcceleratorTests
{
    /// <summary>Whether this machine has a usable CUDA device (CI's machines have none).</summary>
    private static bool HasCuda()
    {
        using Context context = Context.Create(b => b.Cuda());
        return context.GetCudaDevices().Count > 0;
    }

    [Fact]
    public void Cuda_WhenRequested_IsUsedOrRefusedWithAMessage()
    {
        if (HasCuda())
        {
            using TidalAccelerator cuda = TidalAccelerator.Create(DeviceKind.Cuda);
            Assert.True(cuda.IsCuda);
            Assert.StartsWith("CUDA: ", cuda.Description);
        }
        else
        {
            var e = Assert.Throws<InvalidOperationException>(() => TidalAccelerator.Create(DeviceKind.Cuda));
            Assert.Contains("CUDA was requested", e.Message);
        }
    }

    /// <summary>Kernels compile on first use; CompileAll compiles every one up front (and fails here if any cannot).</summary>
    [Fact]
    public void CompileAll_CompilesEveryKernel()
    {
        using var backend = new GpuBackend(DeviceKind.Cpu);
        backend.CompileAll();
    }

    [Fact]
    public void Auto_PicksCudaWhenUsable_ElseTheCpuAccelerator_AndSaysWhich()
    {
        using TidalAccelerator auto = TidalAccelerator.Create(DeviceKind.Auto);
        Assert.Equal(HasCuda(), auto.IsCuda);
        Assert.Contains(auto.IsCuda ? "CUDA" : "CPU accelerator", auto.Description);
        using var backend = new GpuBackend(DeviceKind.Cpu);
        Assert.Contains("CPU accelerator", backend.Name);
    }

    [Fact]
    public void OutOfMemory_NamesTheRequestedAndFreeSizes()
    {
        using TidalAccelerator cpu = TidalAccelerator.Create(DeviceKind.Cpu);
        const long bytes = 1L << 62; // more than any machine holds
        var e = Assert.Throws<InsufficientMemoryException>(() => cpu.Allocate(bytes));
        Assert.Contains($"{bytes:N0} bytes", e.Message);
        Assert.Contains("MiB free of", e.Message);
    }
}
