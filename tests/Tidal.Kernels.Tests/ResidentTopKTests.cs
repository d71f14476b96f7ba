using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using Tidal.Core.Reference;
using Tidal.Kernels.Kernels;

namespace Tidal.Kernels.Tests;

/// <summary>The one-launch resident top-k, whose groups meet at barriers in global memory, selects the reference's set
/// (identical positions, so exact) and leaves its counters zero. It needs every group resident at once: a CPU
/// accelerator with four multiprocessors runs four groups side by side, so the generated shapes need at most four.</summary>
public sealed class ResidentTopKTests : IDisposable
{
    private readonly Context _context = Context.Create(b => b.Optimize(OptimizationLevel.O2).CPU(new CPUDevice(32, 8, 4)));
    private readonly Accelerator _accelerator;
    private readonly TopKSelectKernel _kernel;

    public ResidentTopKTests()
    {
        _accelerator = _context.CreateCPUAccelerator(0);
        _kernel = new TopKSelectKernel(_accelerator);
    }

    /// <summary>Rows × groups ≤ 4: one row of up to four chunks of 8192 positions, two of up to two, four of one;
    /// scores uniform, from four values (ties across whole digits), or sharing their top 24 bits (only the last digit
    /// tells them apart); forced sinks and windows.</summary>
    private static readonly Gen<(int Rows, int N, int Budget, int Kind, int Sinks, int Window, int Seed)> Shapes =
        from rows in Gen.Elements(1, 2, 4)
        from n in Gen.Choose(16, rows == 1 ? 4 * 8192 : rows == 2 ? 2 * 8192 : 8192)
        from budget in Gen.Choose(1, n - 1)
        from kind in Gen.Choose(0, 2)
        from sinks in Gen.Choose(0, 4)
        from window in Gen.Choose(0, 8)
        from seed in Gen.Choose(0, int.MaxValue)
        select (rows, n, budget, kind, sinks, window, seed);

    [Property(MaxTest = 12)]
    public Property Resident_SelectsTheReferenceSet_AndLeavesItsCountersZero() =>
        Prop.ForAll(Shapes.ToArbitrary(), s =>
        {
            var forced = new ForcedTokens(s.Sinks, s.Window);
            // n ≥ 16 > 12 ≥ the forced positions, so a budget that holds them stays below n.
            int budget = Math.Max(s.Budget, s.Sinks + Math.Max(s.Window, 1));
            var random = new Random(s.Seed);
            float[] pool = [-1f, 0f, 0.5f, 2f];
            float[] scores = Enumerable.Range(0, s.Rows * s.N).Select(_ => s.Kind switch
            {
                0 => random.NextSingle() * 10 - 5,
                1 => pool[random.Next(pool.Length)],
                _ => BitConverter.Int32BitsToSingle(0x3F80_0000 + random.Next(256)),
            }).ToArray();
            var expected = new int[s.Rows * budget];
            TopK.SelectPerQueryHead(scores, s.Rows, budget, expected, forced);
            Assert.Equal(expected, SelectResident(scores, s.Rows, s.N, budget, forced));
        });

    /// <summary>A budget the forced positions fill leaves nothing to pick by score: the groups skip the radix levels
    /// (all of a row's groups alike, so their barriers still match) and select the forced positions only.</summary>
    [Fact]
    public void ForcedPositionsFillingTheBudget_AreTheSelection()
    {
        const int rows = 2, n = 9000, sinks = 3, window = 5;
        var random = new Random(5);
        float[] scores = Enumerable.Range(0, rows * n).Select(_ => random.NextSingle()).ToArray();
        int[] row = [0, 1, 2, n - 5, n - 4, n - 3, n - 2, n - 1];
        Assert.Equal([.. row, .. row], SelectResident(scores, rows, n, sinks + window, new ForcedTokens(sinks, window)));
    }

    /// <summary>Runs the kernel on a shape that must take the resident path, from zeroed counters; asserts they are zero
    /// again afterwards, as the next selection needs them, and returns the selected positions.</summary>
    private int[] SelectResident(float[] scores, int rows, int n, int budget, ForcedTokens forced)
    {
        Assert.True(_kernel.TryResidentShape(rows, n, out _), "the shape must take the resident path");
        using var input = _accelerator.Allocate1D(scores);
        using var output = _accelerator.Allocate1D<int>(rows * budget);
        using var counters = _accelerator.Allocate1D<int>(TopKSelectKernel.CounterSize(rows));
        using var scratch = _accelerator.Allocate1D<int>(TopKSelectKernel.ScratchSize(rows, n));
        counters.MemSetToZero();
        _kernel.Launch(new TopKSelectKernel.Args
        {
            Scores = input.View, Output = output.View, N = n, K = budget, Sinks = forced.Sinks, Window = forced.Window, Rows = rows,
        }, counters.View, scratch.View);
        Assert.All(counters.GetAsArray1D(), c => Assert.Equal(0, c));
        return output.GetAsArray1D();
    }

    /// <summary>A grid the device cannot hold at once (here, more than four groups) is not resident.</summary>
    [Fact]
    public void TooManyGroups_AreNotResident() => Assert.False(_kernel.TryResidentShape(2, 3 * 8192, out _));

    public void Dispose()
    {
        _accelerator.Dispose();
        _context.Dispose();
    }
}
