using Tidal.Core.Backends;
using Tidal.Models.Engine;

namespace Tidal.Cli.Tests;

/// <summary>The tidal command line, run in-process on small inputs (the bundled tidal-tiny, CPU engine).</summary>
public sealed class CliTests
{
    /// <summary>A PNG of the given size with drawn content: more than a handful of colours (axes, text, data).</summary>
    private static void AssertPicture(string path, int width, int height)
    {
        using SkiaSharp.SKBitmap bitmap = SkiaSharp.SKBitmap.Decode(path) ?? throw new Xunit.Sdk.XunitException($"{path} is not an image");
        Assert.Equal((width, height), (bitmap.Width, bitmap.Height));
        Assert.True(bitmap.Pixels.Distinct().Count() > 16, "the image is (nearly) blank");
        File.Delete(path);
    }

    private static string PlotPath() => Path.Combine(Path.GetTempPath(), $"tidal-plot-{Guid.NewGuid():N}.png");

    private static async Task<(int Code, string Output, string Errors)> Run(params string[] args)
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        int code = await TidalCli.RunAsync(args, output, errors);
        return (code, output.ToString(), errors.ToString());
    }

    [Fact]
    public async Task Help_ExplainsEveryCommandAndOption()
    {
        var (code, output, _) = await Run("--help");
        Assert.Equal(0, code);
        Assert.Contains("generate", output);
        Assert.Contains("bench", output);
        (code, output, _) = await Run("generate", "--help");
        Assert.Equal(0, code);
        foreach (string option in new[] { "--model", "--prompt", "--prompt-file", "--max-tokens", "--temperature", "--top-p", "--seed", "--policy",
                     "--budget", "--reselect-layer", "--select-by", "--correction-interval", "--device", "--kv-cache" })
            Assert.Contains(option, output);
        (code, output, _) = await Run("bench", "--help");
        Assert.Equal(0, code);
        foreach (string option in new[] { "--shape", "--layers", "--contexts", "--policies", "--steps", "--budget", "--device", "--plot" })
            Assert.Contains(option, output);
    }

    [Fact]
    public async Task Generate_StreamsWhatTheLibraryGenerates_AndReportsSpeed()
    {
        const string prompt = "The pass key for ORION is";
        var (code, output, errors) = await Run("generate", "-p", prompt, "-n", "12", "--policy", "tidal", "--budget", "64", "--select-by", "kvhead", "--device", "cpu");
        Assert.True(code == 0, errors);
        using var backend = new CpuBackend();
        using LlamaModel model = LlamaModel.Load(LlamaModel.DefaultDirectory!, backend);
        using Session session = model.CreateSession(64);
        var expected = new System.Text.StringBuilder();
        var policy = AttentionPolicy.TidalDecode(model.Config.Layers, 64, scope: SelectionScope.KvHead);
        await foreach (GeneratedToken token in session.GenerateAsync(prompt, new GenerationOptions { MaxNewTokens = 12, Policy = policy }))
            expected.Append(token.Text);
        Assert.Equal(expected.ToString().TrimEnd(), output.TrimEnd());
        Assert.Contains("prefill:", errors);
        Assert.Contains("tokens/s", errors);
    }

    [Fact]
    public async Task Errors_AreOneLine_WithTheStackOnlyWhenVerbose()
    {
        var (code, _, errors) = await Run("generate", "-p", "hi", "--model", "/no/such/model", "--device", "cpu");
        Assert.Equal(1, code);
        Assert.Equal("error: model directory '/no/such/model' not found.", errors.Trim());
        (code, _, errors) = await Run("generate", "-p", "hi", "--model", "/no/such/model", "--device", "cpu", "--verbose");
        Assert.Equal(1, code);
        Assert.Contains("   at ", errors);
        (code, _, errors) = await Run("generate", "--device", "cpu");
        Assert.Equal(1, code);
        Assert.Contains("--prompt", errors);
        (code, _, _) = await Run("generate", "-p", "hi", "--budget", "many");
        Assert.NotEqual(0, code);
        (code, _, _) = await Run("generate", "-p", "hi", "--policy", "magic");
        Assert.NotEqual(0, code);
    }

    [Fact]
    public async Task Bench_PrintsATableOfEveryPolicyAtEveryContext()
    {
        string plot = PlotPath();
        var (code, output, errors) = await Run("bench", "--shape", "tiny", "--layers", "4", "--contexts", "48,96", "--steps", "2", "--budget", "32", "--device", "cpu", "--plot", plot);
        Assert.True(code == 0, errors);
        foreach (string text in new[] { "full ms/token", "tidal ms/token", "quest ms/token", "48", "96" }) Assert.Contains(text, output);
        AssertPicture(plot, 640, 420);
        (code, _, errors) = await Run("bench", "--shape", "tiny", "--contexts", "0", "--device", "cpu");
        Assert.Equal(1, code);
        Assert.Contains("--contexts", errors);
    }

    [Fact]
    public async Task EvalPerplexity_WithABudgetCoveringTheWindow_EqualsFullAttention()
    {
        string plot = PlotPath();
        var (code, output, errors) = await Run("eval", "ppl", "--length", "80", "--prefix", "24", "--windows", "1", "--policies", "full,tidal,quest",
            "--budgets", "32,1024", "--device", "cpu", "--plot", plot);
        Assert.True(code == 0, errors);
        AssertPicture(plot, 640, 420);
        string Perplexity(string label) => output.Split('\n').Single(line => line.Contains(label + " ")).Split('│', StringSplitOptions.RemoveEmptyEntries)[1].Trim();
        // A budget at least as long as the context makes every sparse layer attend to every position: the same bits as dense.
        Assert.Equal(Perplexity("full"), Perplexity("tidal k=1024"));
        Assert.Equal(Perplexity("full"), Perplexity("quest k=1024"));
        Assert.True(double.Parse(Perplexity("tidal k=32")) > 1);
    }

    [Fact]
    public async Task EvalPerplexity_WithF16KvCache_OnTheCpu_UsesF16Caches()
    {
        var (code, output, errors) = await Run("eval", "ppl", "--length", "80", "--prefix", "24", "--windows", "1", "--policies", "full",
            "--device", "cpu", "--kv-cache", "f16");
        Assert.True(code == 0, errors);
        Assert.Contains("F16 KV cache", errors);
        using var backend = new CpuBackend(Tidal.Core.DType.F16);
        using LlamaModel model = LlamaModel.Load(LlamaModel.DefaultDirectory!, backend);
        int[] tokens = [model.Config.BosTokenId, .. model.Tokenizer!.Encode(File.ReadAllText(Path.Combine(LlamaModel.DefaultDirectory!, "heldout.txt")), addSpecialTokens: false).AsSpan(0, 79)];
        double expected = Tidal.Models.Evaluation.Perplexity.Evaluate(model, tokens, 24, AttentionPolicy.Full(model.Config.Layers));
        Assert.Contains($"{expected:F2}", output);
    }

    [Fact]
    public async Task EvalNeedle_ScoresEveryPolicyAndQuestionMode()
    {
        string plot = PlotPath();
        var (code, output, errors) = await Run("eval", "needle", "--contexts", "200", "--depths", "2", "--policies", "full,quest", "--budgets", "32",
            "--device", "cpu", "--plot", plot);
        Assert.True(code == 0, errors);
        AssertPicture(plot, 4 * 360, 300); // a panel per (policy, mode): 2 × 2 in one row of four
        foreach (string row in new[] { "full", "quest k=32" })
            foreach (string mode in new[] { "prefilled", "decoded" })
                Assert.Contains(output.Split('\n'), line => line.Contains(row + " ") && line.Contains(mode) && line.Contains("/2"));
        // The bundled model retrieves a pass key from 200 tokens with full attention (its card: 100 % up to 4K).
        Assert.Contains(output.Split('\n'), line => line.Contains("full ") && line.Contains("prefilled") && line.Contains("2/2"));
        (code, _, errors) = await Run("eval", "needle", "--modes", "sideways", "--device", "cpu");
        Assert.Equal(1, code);
        Assert.Contains("--modes", errors);
    }

    [Fact]
    public async Task EvalCoherence_PrintsTheOverlapMap_AndARecommendedLayer()
    {
        string plot = PlotPath();
        var (code, output, errors) = await Run("eval", "coherence", "--length", "96", "--steps", "2", "--budget", "16", "--device", "cpu", "--per-head", "--plot", plot);
        Assert.True(code == 0, errors);
        AssertPicture(plot, 4 * 360, 2 * 300); // mean, 4 heads, captured mass: 6 panels in rows of four
        Assert.Contains("Query head 3:", output);
        string[] lines = output.Split('\n');
        // A layer's set always overlaps itself entirely: row l holds 1.00 in column l, in the mean table and each head's.
        for (int layer = 0; layer < 12; layer++)
        {
            string[] rows = lines.Where(line => line.StartsWith($"│ {layer} ", StringComparison.Ordinal))
                .Where(line => line.Split('│', StringSplitOptions.RemoveEmptyEntries).Length >= 13).ToArray(); // not the captured-mass table
            Assert.Equal(1 + 4, rows.Length);
            Assert.All(rows, row => Assert.Equal("1.00", row.Split('│', StringSplitOptions.RemoveEmptyEntries)[layer + 1].Trim()));
        }
        Assert.Contains("recommended re-selection layer:", output);
        Assert.Contains("warning: even the best re-selection layer", output); // tidal-tiny's layers share little (its card)
    }
}
