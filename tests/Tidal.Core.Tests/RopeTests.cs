using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Core.Reference;

namespace Tidal.Core.Tests;

public class RopeTests
{
    private static Gen<(int HalfDim, int Position, int Seed)> Cases =>
        from half in Gen.Choose(1, 64) from pos in Gen.Choose(0, 8191) from seed in TestData.Seed select (half, pos, seed);

    [Property(MaxTest = 100)]
    public Property Rotation_PreservesEachPairsNorm_AndMatchesDoubleOracle() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            int d = 2 * c.HalfDim;
            var table = new RopeTable(d, 500000f, c.Position + 1);
            float[] x = TestData.Floats(new Random(c.Seed), 3 * d, 2f);
            foreach (RopeLayout layout in Enum.GetValues<RopeLayout>())
            {
                float[] y = (float[])x.Clone();
                table.Apply(y, c.Position, layout);
                for (int h = 0; h < 3; h++)
                    for (int i = 0; i < c.HalfDim; i++)
                    {
                        (int a, int b) = layout == RopeLayout.HalfSplit ? (h * d + i, h * d + i + c.HalfDim) : (h * d + 2 * i, h * d + 2 * i + 1);
                        double angle = (float)c.Position * table.InverseFrequencies[i];
                        double ea = x[a] * Math.Cos(angle) - x[b] * Math.Sin(angle), eb = x[b] * Math.Cos(angle) + x[a] * Math.Sin(angle);
                        double norm = Math.Sqrt((double)x[a] * x[a] + (double)x[b] * x[b]);
                        // cos/sin rounded once from double, two products and a sum rounded: ≤ 4 ulp of the pair norm.
                        double bound = 4 * TestData.Eps * norm + 1e-37;
                        Assert.True(Math.Abs(y[a] - ea) <= bound && Math.Abs(y[b] - eb) <= bound, $"pair {i} at {c.Position}");
                        double newNorm = Math.Sqrt((double)y[a] * y[a] + (double)y[b] * y[b]);
                        Assert.True(Math.Abs(newNorm - norm) <= 2 * bound, $"norm {norm} became {newNorm}");
                    }
            }
        });

    [Property(MaxTest = 50)]
    public Property Rotation_RoundTrips_ByRotatingBack() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            int d = 2 * c.HalfDim;
            var table = new RopeTable(d, 10000f, c.Position + 1);
            float[] x = TestData.Floats(new Random(c.Seed), d);
            float[] y = (float[])x.Clone();
            table.Apply(y, c.Position, RopeLayout.HalfSplit);
            // Undo: rotate by the negative angle with the same cos and sin.
            var cos = table.Cos(c.Position); var sin = table.Sin(c.Position);
            for (int i = 0; i < c.HalfDim; i++)
            {
                float a = y[i], b = y[i + c.HalfDim];
                float ra = a * cos[i] + b * sin[i], rb = b * cos[i] - a * sin[i];
                // cos²+sin² is 1 within 2 ulp, plus 4 roundings per pass: 16 ulp of the pair norm.
                double bound = 16 * TestData.Eps * Math.Sqrt(x[i] * x[i] + x[i + c.HalfDim] * x[i + c.HalfDim]) + 1e-37;
                Assert.True(Math.Abs(ra - x[i]) <= bound && Math.Abs(rb - x[i + c.HalfDim]) <= bound);
            }
        });

    [Fact]
    public void HalfSplitAndInterleaved_AgreeUnderThePairPermutation()
    {
        const int d = 8;
        var table = new RopeTable(d, 10000f, 10);
        float[] halfSplit = TestData.Floats(new Random(1), d);
        float[] interleaved = new float[d];
        for (int i = 0; i < d / 2; i++) { interleaved[2 * i] = halfSplit[i]; interleaved[2 * i + 1] = halfSplit[i + d / 2]; }
        table.Apply(halfSplit, 7, RopeLayout.HalfSplit);
        table.Apply(interleaved, 7, RopeLayout.Interleaved);
        for (int i = 0; i < d / 2; i++)
        {
            Assert.Equal(halfSplit[i], interleaved[2 * i]);
            Assert.Equal(halfSplit[i + d / 2], interleaved[2 * i + 1]);
        }
    }

    [Fact]
    public void Llama31Scaling_FollowsTheLlama3Rule()
    {
        var scaling = new RopeScaling(8f, 1f, 4f, 8192);
        var plain = new RopeTable(128, 500000f, 1);
        var scaled = new RopeTable(128, 500000f, 1, scaling);
        for (int i = 0; i < 64; i++)
        {
            double f = plain.InverseFrequencies[i], wavelen = 2 * Math.PI / f;
            double expected = wavelen < 8192 / 4.0 ? f
                : wavelen > 8192 / 1.0 ? f / 8
                : (1 - (8192 / wavelen - 1) / 3) * f / 8 + (8192 / wavelen - 1) / 3 * f;
            Assert.True(Math.Abs(scaled.InverseFrequencies[i] - expected) <= 4 * TestData.Eps * expected, $"inv_freq[{i}]");
        }
        Assert.Equal(plain.InverseFrequencies[0], scaled.InverseFrequencies[0]); // highest frequency kept
        Assert.Equal(plain.InverseFrequencies[63] / 8, scaled.InverseFrequencies[63]); // lowest frequency divided by the factor
    }

    [Fact]
    public void BadArguments_Throw()
    {
        Assert.Equal("headDim", Assert.Throws<ArgumentException>(() => new RopeTable(7, 10000f, 4)).ParamName);
        var table = new RopeTable(4, 10000f, 4);
        Assert.Equal("x", Assert.Throws<ArgumentException>(() => table.Apply(new float[6], 0, RopeLayout.HalfSplit)).ParamName);
        Assert.Equal("position", Assert.Throws<ArgumentOutOfRangeException>(() => table.Apply(new float[4], 4, RopeLayout.HalfSplit)).ParamName);
    }
}
