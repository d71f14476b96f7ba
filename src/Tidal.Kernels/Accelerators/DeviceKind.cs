namespace Tidal.Kernels.Accelerators;

/// <summary>Which ILGPU accelerator runs the kernels.</summary>
public enum DeviceKind
{
    /// <summary>CUDA if a CUDA device is usable, else ILGPU's CPU accelerator.</summary>
    Auto,
    /// <summary>ILGPU's CPU accelerator (32-wide warps): slow, for verification on machines without a GPU.</summary>
    Cpu,
    /// <summary>An NVIDIA GPU through CUDA; an error if none can be used.</summary>
    Cuda,
}
