using ILGPU;
using ILGPU.Runtime;

namespace Tidal.Kernels.Kernels;

/// <summary>
/// The layer's elementwise kernels, one thread per element: embedding gather, residual add, SwiGLU.
/// Reference: Tidal.Core.Reference.Elementwise.
/// </summary>
public sealed class ElementwiseKernels
{
    private const int GroupSize = 256;
    private readonly Action<KernelConfig, ArrayView<byte>, int, int, int, ArrayView<float>> _embed;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, int> _add;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int> _swiGlu;

    /// <summary>Compiles the kernels for <paramref name="accelerator"/>.</summary>
    public ElementwiseKernels(Accelerator accelerator)
    {
        _embed = accelerator.LoadStreamKernel<ArrayView<byte>, int, int, int, ArrayView<float>>(Embed);
        _add = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, int>(AddInPlace);
        _swiGlu = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(SwiGlu);
    }

    private static KernelConfig Config(int n) => new((n + GroupSize - 1) / GroupSize, GroupSize);

    /// <summary>output[i] = table[token, i] widened; table [vocab, dim] in <paramref name="format"/>.</summary>
    public void LaunchEmbed(ArrayView<byte> table, int format, int token, int dim, ArrayView<float> output) => _embed(Config(dim), table, format, token, dim, output);

    /// <summary>x[i] += y[i].</summary>
    public void LaunchAddInPlace(ArrayView<float> x, ArrayView<float> y, int n) => _add(Config(n), x, y, n);

    /// <summary>output[i] = SiLU(gate[i]) · up[i].</summary>
    public void LaunchSwiGlu(ArrayView<float> gate, ArrayView<float> up, ArrayView<float> output, int n) => _swiGlu(Config(n), gate, up, output, n);

    private static void Embed(ArrayView<byte> table, int format, int token, int dim, ArrayView<float> output)
    {
        int i = Grid.GlobalIndex.X;
        if (i < dim) output[i] = Loads.Element(table, (long)token * dim + i, format);
    }

    private static void AddInPlace(ArrayView<float> x, ArrayView<float> y, int n)
    {
        int i = Grid.GlobalIndex.X;
        if (i < n) x[i] = KernelMath.Add(x[i], y[i]);
    }

    private static void SwiGlu(ArrayView<float> gate, ArrayView<float> up, ArrayView<float> output, int n)
    {
        int i = Grid.GlobalIndex.X;
        if (i < n) output[i] = KernelMath.Mul(KernelMath.Silu(gate[i]), up[i]);
    }
}
