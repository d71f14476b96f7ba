using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Core.Numerics;
using Tidal.Core.Reference;

namespace Tidal.Core.Tests;

public class LinearTests
{
    private static Gen<(int Rows, int Cols, int Batch, int Seed)> Cases =>
        from rows in Gen.Choose(1, 70) from cols in Gen.Choose(1, 600) from batch in Gen.Choose(1, 20) from seed in TestData.Seed
        select (rows, cols, batch, seed);

    private static void Check<TW>(TW[] w, float[] x, int rows, int cols, int batch) where TW : unmanaged
    {
        var y = new float[batch * rows];
        Linear.MatMul<TW>(w, x, y, batch);
        float[] wf = w.Select(v => Conversions.ToSingle(v)).ToArray();
        for (int b = 0; b < batch; b++)
            for (int r = 0; r < rows; r++)
            {
                double exact = 0, sumAbs = 0;
                for (int c = 0; c < cols; c++) { double t = (double)wf[r * cols + c] * x[b * cols + c]; exact += t; sumAbs += Math.Abs(t); }
                float got = y[b * rows + r];
                Assert.True(Math.Abs(got - exact) <= TestData.DotBound(cols, sumAbs), $"{typeof(TW).Name} y[{b},{r}] = {got:R}, exact {exact:R}");
                // Each output is the canonical dot, bit for bit, whatever the batch or threading.
                Assert.Equal(Reduction.Dot<TW>(w.AsSpan(r * cols, cols), x.AsSpan(b * cols, cols)), got);
            }
    }

    [Property(MaxTest = 60)]
    public Property MatMul_MatchesDoubleOracle_ForF32F16BF16Weights() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            var random = new Random(c.Seed);
            float[] x = TestData.Floats(random, c.Batch * c.Cols);
            Check(TestData.Floats(random, c.Rows * c.Cols), x, c.Rows, c.Cols, c.Batch);
            Check(TestData.Halves(random, c.Rows * c.Cols), x, c.Rows, c.Cols, c.Batch);
            Check(TestData.BFloat16s(random, c.Rows * c.Cols), x, c.Rows, c.Cols, c.Batch);
        });

    [Fact]
    public void LargeMatVec_SplitAcrossThreads_GivesTheSerialBits()
    {
        var random = new Random(5);
        const int rows = 1024, cols = 1000;
        Half[] w = TestData.Halves(random, rows * cols);
        float[] x = TestData.Floats(random, cols);
        var y = new float[rows];
        Linear.MatVec<Half>(w, x, y);
        for (int r = 0; r < rows; r++) Assert.Equal(Reduction.Dot<Half>(w.AsSpan(r * cols, cols), x), y[r]);
    }

    [Fact]
    public void MismatchedShapes_ThrowNamingTheArgument()
    {
        Assert.Equal("w", Assert.Throws<ArgumentException>(() => Linear.MatVec<float>(new float[10], new float[3], new float[3])).ParamName);
        Assert.Equal("batch", Assert.Throws<ArgumentException>(() => Linear.MatMul<float>(new float[9], new float[3], new float[3], 2)).ParamName);
    }
}
