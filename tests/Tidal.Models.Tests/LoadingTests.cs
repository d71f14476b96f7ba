using System.Text;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Core.Tensors;
using Tidal.Models.Config;
using Tidal.Models.Engine;
using Tidal.Models.Loading;

namespace Tidal.Models.Tests;

public sealed class LoadingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tidal-loading-").FullName;

    private static LlamaConfig Config(bool tied) => new()
    {
        VocabSize = 53, HiddenSize = 32, IntermediateSize = 48, Layers = 2, Heads = 4, KvHeads = 2, HeadDim = 8,
        RopeTheta = 10000f, MaxPositions = 64, TiedEmbeddings = tied, BosTokenId = 0, EosTokenIds = [1],
    };

    private static IEnumerable<(string, HostTensor)> All(ITensorSource source) =>
        source.Names.Order(StringComparer.Ordinal).Select(n => (n, source.Get(n, ((RandomTensorSource)source).ShapeOf(n))));

    private static float[] Logits(ModelWeights weights)
    {
        using var model = LlamaModel.FromWeights(weights);
        using Session s = model.CreateSession(16);
        s.Prefill([3, 14, 15, 9, 2, 6]);
        return s.Logits.ToArray();
    }

    [Theory]
    [InlineData(true, DType.BF16)]
    [InlineData(false, DType.F16)]
    [InlineData(false, DType.F32)]
    public void SyntheticModel_RoundTripsThroughSafetensors_ShardedSafetensors_AndGguf_WithIdenticalLogits(bool tied, DType type)
    {
        LlamaConfig config = Config(tied);
        using var source = new RandomTensorSource(config, type, seed: 11);
        var backend = new CpuBackend();
        float[] expected = Logits(ModelWeights.Load(source, config, backend));

        string single = Path.Combine(_dir, "single");
        Directory.CreateDirectory(single);
        SafeTensorsWriter.Write(Path.Combine(single, "model.safetensors"), All(source), new Dictionary<string, string> { ["format"] = "pt" });
        using (var st = new ShardedSafeTensors(single))
        {
            Assert.Equal("pt", st.Metadata["format"]);
            Assert.Equal(expected, Logits(ModelWeights.Load(st, config, backend)));
        }

        string sharded = Path.Combine(_dir, "sharded");
        Directory.CreateDirectory(sharded);
        var names = All(source).ToList();
        var map = new Dictionary<string, string>();
        for (int part = 0; part < 2; part++)
        {
            string file = $"model-0000{part + 1}-of-00002.safetensors";
            var mine = names.Where((_, i) => i % 2 == part).ToList();
            SafeTensorsWriter.Write(Path.Combine(sharded, file), mine);
            foreach (var (n, _) in mine) map[n] = file;
        }
        File.WriteAllText(Path.Combine(sharded, "model.safetensors.index.json"), System.Text.Json.JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = map }));
        using (var st = new ShardedSafeTensors(sharded))
            Assert.Equal(expected, Logits(ModelWeights.Load(st, config, backend)));

        string ggufPath = Path.Combine(_dir, "model.gguf");
        GgufWriter.WriteLlama(ggufPath, config, source);
        using var gguf = new GgufFile(ggufPath);
        LlamaConfig read = gguf.ReadConfig();
        Assert.Equal((config.VocabSize, config.HiddenSize, config.IntermediateSize, config.Layers, config.Heads, config.KvHeads, config.HeadDim, config.TiedEmbeddings, config.RopeTheta),
            (read.VocabSize, read.HiddenSize, read.IntermediateSize, read.Layers, read.Heads, read.KvHeads, read.HeadDim, read.TiedEmbeddings, read.RopeTheta));
        // Q/K rows come back in HF order exactly, so GGUF and safetensors give the same logits bit for bit.
        Assert.Equal(expected, Logits(ModelWeights.Load(gguf, read, backend)));
    }

    [Fact]
    public void Llama31RopeScaling_RoundTripsThroughGgufAsRopeFreqs()
    {
        var scaling = new Tidal.Core.Reference.RopeScaling(8f, 1f, 4f, 64);
        LlamaConfig config = Config(false) with { RopeScaling = scaling };
        using var source = new RandomTensorSource(config, DType.BF16, seed: 5);
        float[] expected = Logits(ModelWeights.Load(source, config, new CpuBackend()));
        string path = Path.Combine(_dir, "llama31.gguf");
        GgufWriter.WriteLlama(path, config, source);
        using var gguf = new GgufFile(path);
        LlamaConfig read = gguf.ReadConfig();
        Assert.NotNull(read.RopeDivisors);
        float[] direct = new Tidal.Core.Reference.RopeTable(8, 10000f, 1, scaling).InverseFrequencies;
        float[] viaDivisors = new Tidal.Core.Reference.RopeTable(8, 10000f, 1, null, read.RopeDivisors).InverseFrequencies;
        // Dividing by a rounded divisor instead of applying the llama3 formula can move a frequency by an ulp or two.
        for (int i = 0; i < direct.Length; i++) Assert.True(Math.Abs(direct[i] - viaDivisors[i]) <= 4e-7 * direct[i], $"inv_freq[{i}]");
        Assert.Contains(read.RopeDivisors!, v => v > 1f && v < 8f); // one frequency blended, as the llama3 rule does
        float[] got = Logits(ModelWeights.Load(gguf, read, new CpuBackend()));
        // Frequencies within 2 ulp move angles at positions < 8 by < 1e-5 rad; logits of this small model move less than 1e-4.
        for (int i = 0; i < got.Length; i++) Assert.True(Math.Abs(got[i] - expected[i]) <= 1e-4, $"logit {i}: {got[i]} vs {expected[i]}");
    }

    [Fact]
    public void RopeRowPermutation_RoundTrips_AndMatchesLlamaCppsOrder()
    {
        var hf = HostTensor.FromSpan<float>(Enumerable.Range(0, 16).Select(i => (float)i).ToArray(), new Shape(8, 2)); // 2 heads, d = 4
        using HostTensor gguf = RopeRows.ToInterleaved(hf, 2);
        // head rows (a0, a1, b0, b1) → (a0, b0, a1, b1)
        Assert.Equal([0f, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15], gguf.AsSpan<float>().ToArray());
        using HostTensor back = RopeRows.ToHalfSplit(gguf, 2);
        Assert.Equal(hf.AsSpan<float>().ToArray(), back.AsSpan<float>().ToArray());
    }

    private string WriteValid()
    {
        LlamaConfig config = Config(true);
        using var source = new RandomTensorSource(config, DType.F16, 1);
        string path = Path.Combine(_dir, $"valid-{Guid.NewGuid():N}.safetensors");
        SafeTensorsWriter.Write(path, All(source));
        return path;
    }

    private string WriteRaw(string json, int dataBytes)
    {
        string path = Path.Combine(_dir, $"raw-{Guid.NewGuid():N}.safetensors");
        byte[] header = Encoding.UTF8.GetBytes(json);
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)header.Length), .. header, .. new byte[dataBytes]]);
        return path;
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 4, "outside")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}""", 8, "needs 8")]
    [InlineData("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", 12, "overlap")]
    [InlineData("""{"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}}""", 2, "unsupported dtype 'I8'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""", 8, "'a'")]
    [InlineData("""{"a":{"dtype":"F32"}}""", 8, "'a'")]
    [InlineData("""{"a": [1, 2""", 8, "not valid JSON")]
    public void MalformedSafetensors_RaiseModelFormatException_NamingTheProblem(string header, int dataBytes, string expected)
    {
        var e = Assert.Throws<ModelFormatException>(() => new SafeTensorsFile(WriteRaw(header, dataBytes)).Dispose());
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void TruncatedFiles_AndHostileHeaderLengths_AreRejected()
    {
        string path = WriteValid();
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 10)]);
        Assert.Contains("outside", Assert.Throws<ModelFormatException>(() => new SafeTensorsFile(path).Dispose()).Message);
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(long.MaxValue), .. new byte[16]]);
        Assert.Contains("header length", Assert.Throws<ModelFormatException>(() => new SafeTensorsFile(path).Dispose()).Message);
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("too short", Assert.Throws<ModelFormatException>(() => new SafeTensorsFile(path).Dispose()).Message);
    }

    [Fact]
    public void WrongShapesAndMissingTensors_NameTheTensor()
    {
        using var file = new SafeTensorsFile(WriteValid());
        Assert.Contains("model.norm.weight", Assert.Throws<ModelFormatException>(() => file.Get("model.norm.weight", new Shape(31))).Message);
        Assert.Contains("lm_head.weight", Assert.Throws<ModelFormatException>(() => file.Get("lm_head.weight", new Shape(53, 32))).Message);
        var wrong = Config(true) with { HiddenSize = 40, HeadDim = 10 };
        Assert.Throws<ModelFormatException>(() => ModelWeights.Load(file, wrong, new CpuBackend()));
    }

    [Fact]
    public void MalformedGguf_IsRejectedWithAReason()
    {
        string path = Path.Combine(_dir, "bad.gguf");
        File.WriteAllBytes(path, Encoding.ASCII.GetBytes("GGML0000000000000000000000"));
        Assert.Contains("magic", Assert.Throws<ModelFormatException>(() => new GgufFile(path).Dispose()).Message);
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(GgufFile.Magic), .. BitConverter.GetBytes(2u), .. new byte[16]]);
        Assert.Contains("version 2", Assert.Throws<ModelFormatException>(() => new GgufFile(path).Dispose()).Message);
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(GgufFile.Magic), .. BitConverter.GetBytes(3u), .. BitConverter.GetBytes(ulong.MaxValue), .. new byte[8]]);
        Assert.Contains("tensor count", Assert.Throws<ModelFormatException>(() => new GgufFile(path).Dispose()).Message);
        var q4 = HostTensor.Allocate(DType.F32, new Shape(4));
        GgufWriter.Write(path, [("general.architecture", "llama")], [("x", q4)]);
        byte[] bytes = File.ReadAllBytes(path);
        int typeAt = IndexOf(bytes, Encoding.ASCII.GetBytes("x")) + 1 + 4 + 8; // name, n_dims, one dim
        bytes[typeAt] = 2; // Q4_0
        File.WriteAllBytes(path, bytes);
        Assert.Contains("ggml type 2", Assert.Throws<ModelFormatException>(() => new GgufFile(path).Dispose()).Message);
    }

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle) && i > 24) return i;
        return -1;
    }

    /// <summary>Any truncation or corrupted byte either still loads or raises ModelFormatException: never a crash, hang or other error.</summary>
    [Property(MaxTest = 120)]
    public Property CorruptedFiles_FailOnlyWithModelFormatException() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue - 1).ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (seed, gguf) =>
        {
            var random = new Random(seed);
            LlamaConfig config = Config(false);
            using var source = new RandomTensorSource(config, DType.F16, 3);
            string path = Path.Combine(_dir, $"fuzz-{seed}-{gguf}.{(gguf ? "gguf" : "safetensors")}");
            if (gguf) GgufWriter.WriteLlama(path, config, source);
            else SafeTensorsWriter.Write(path, All(source));
            byte[] bytes = File.ReadAllBytes(path);
            if (random.Next(2) == 0) bytes = bytes[..random.Next(bytes.Length)];
            else for (int i = 0; i < 4; i++) bytes[random.Next(Math.Min(bytes.Length, 2048))] = (byte)random.Next(256);
            File.WriteAllBytes(path, bytes);
            try
            {
                using ITensorSource file = gguf ? new GgufFile(path) : new SafeTensorsFile(path);
                LlamaConfig c = file is GgufFile g ? g.ReadConfig() : config;
                ModelWeights.Load(file, c, new CpuBackend()).Dispose();
            }
            catch (ModelFormatException) { }
            finally { File.Delete(path); }
        });

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
