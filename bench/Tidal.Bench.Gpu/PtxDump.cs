using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Tidal.Kernels.Kernels;

namespace Tidal.Bench.Gpu;

/// <summary>
/// `ptx DIR KERNEL...`: writes the PTX that ILGPU generates for Tidal kernels on sm_90 (no GPU needed), so that
/// `ptxas -arch=sm_90 -v` (registers, spills) and `cuobjdump -sass` (instructions per token) can be read off-line.
/// A kernel is `Class:Method`, optionally `:Threads:GroupsPerSm` for the launch bounds the kernel is loaded with, and
/// `@TypeArgument[,TypeArgument]` for a generic kernel (types of Tidal.Kernels.Kernels or nested in the class), e.g.
/// `MatVecKernel:RunHalf:128:8@F16Weights`.
/// </summary>
public static class PtxDump
{
    /// <summary>Writes DIR/Class.Method[.Threads.Groups].ptx for each kernel; returns 2 on an unknown kernel.</summary>
    public static int Run(string directory, IEnumerable<string> kernels)
    {
        Directory.CreateDirectory(directory);
        using var context = Context.Create(b => b.Optimize(OptimizationLevel.O2).EnableAlgorithms().Cuda());
        var backend = new PTXBackend(context, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90, CudaInstructionSet.ISA_88, null);
        foreach (string spec in kernels)
        {
            string[] generic = spec.Split('@'), parts = generic[0].Split(':');
            Type? type = typeof(Format).Assembly.GetType("Tidal.Kernels.Kernels." + parts[0]);
            MethodInfo? method = parts.Length > 1 ? type?.GetMethod(parts[1], BindingFlags.NonPublic | BindingFlags.Public | BindingFlags.Static) : null;
            if (method is null)
            {
                Console.Error.WriteLine($"ptx: no kernel {generic[0]} (expected Class:Method of Tidal.Kernels.Kernels).");
                return 2;
            }
            if (method.IsGenericMethodDefinition)
            {
                Type?[] arguments = generic.Length > 1 ? generic[1].Split(',').Select(n => type!.GetNestedType(n) ?? type.Assembly.GetType("Tidal.Kernels.Kernels." + n)).ToArray() : [];
                if (arguments.Length != method.GetGenericArguments().Length || arguments.Any(t => t is null))
                {
                    Console.Error.WriteLine($"ptx: {generic[0]} is generic: name its {method.GetGenericArguments().Length} type argument(s) (types of Tidal.Kernels.Kernels, or nested in {parts[0]}) after '@', separated by commas.");
                    return 2;
                }
                method = method.MakeGenericMethod(arguments!);
            }
            var bounds = parts.Length > 3 ? new KernelSpecialization(int.Parse(parts[2]), int.Parse(parts[3])) : KernelSpecialization.Empty;
            var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(method), bounds);
            string path = Path.Combine(directory, string.Join('.', parts) + (generic.Length > 1 ? "." + generic[1].Replace(',', '.') : "") + ".ptx");
            File.WriteAllText(path, compiled.PTXAssembly);
            Console.WriteLine($"{spec}: {path}");
        }
        return 0;
    }
}
