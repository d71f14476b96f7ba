using System.Text.Json;

namespace Tidal.Models.Tests;

/// <summary>Locates tidal-tiny: $TIDAL_TINY, the repository's models/tidal-tiny, or ../shared/models/tidal-tiny beside the checkout.</summary>
internal static class TinyModel
{
    public static readonly string? Directory = Find();

    private static string? Find()
    {
        if (Environment.GetEnvironmentVariable("TIDAL_TINY") is { Length: > 0 } env && System.IO.Directory.Exists(env)) return env;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (!File.Exists(Path.Combine(dir.FullName, "Tidal.sln"))) continue;
            foreach (string candidate in new[] { Path.Combine(dir.FullName, "models", "tidal-tiny"), Path.Combine(dir.FullName, "..", "shared", "models", "tidal-tiny") })
                if (File.Exists(Path.Combine(candidate, "config.json"))) return Path.GetFullPath(candidate);
            return null;
        }
        return null;
    }

    public static string Path_(string file) => Path.Combine(Directory ?? throw new InvalidOperationException("tidal-tiny not found"), file);

    public sealed record GoldenPrompt(string Name, string Text, int[] Ids, float[] LastLogits, int[] Greedy);

    public static IReadOnlyList<GoldenPrompt> Golden()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path_("golden.json")));
        return doc.RootElement.GetProperty("prompts").EnumerateArray().Select(p => new GoldenPrompt(
            p.GetProperty("name").GetString()!, p.GetProperty("text").GetString()!,
            p.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
            p.GetProperty("last_logits").EnumerateArray().Select(x => x.GetSingle()).ToArray(),
            p.GetProperty("greedy").GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray())).ToList();
    }
}

/// <summary>A fact that needs tidal-tiny; skipped, with the reason shown, when the model is not present.</summary>
public sealed class TinyModelFactAttribute : FactAttribute
{
    public TinyModelFactAttribute()
    {
        if (TinyModel.Directory is null) Skip = "tidal-tiny not found (set TIDAL_TINY, or place it in models/tidal-tiny or ../shared/models/tidal-tiny)";
    }
}
