using Tidal.Core.Backends;
using Tidal.Core.Tests;
using Tidal.Kernels.Accelerators;

namespace Tidal.Kernels.Tests;

/// <summary>Every kernel, run on ILGPU's CPU accelerator (32-wide warps), must reproduce the reference bit for bit.</summary>
public sealed class GpuBackendOnCpuAcceleratorTests : BackendConformanceTests
{
    protected override IBackend CreateBackend() => new GpuBackend(DeviceKind.Cpu);
}
