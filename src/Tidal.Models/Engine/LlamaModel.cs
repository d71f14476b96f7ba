using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Models.Config;
using Tidal.Models.Loading;
using Tidal.Models.Tokenization;

namespace Tidal.Models.Engine;

/// <summary>A loaded Llama model: config, tokenizer and weights on a backend. Create one <see cref="Session"/> per sequence.</summary>
public sealed class LlamaModel : IDisposable
{
    private LlamaModel(LlamaConfig config, Tokenizer? tokenizer, ModelWeights weights)
    {
        Config = config;
        Tokenizer = tokenizer;
        Weights = weights;
    }

    /// <summary>The model's shape.</summary>
    public LlamaConfig Config { get; }
    /// <summary>Its tokenizer (null for bare weights, which can still prefill and step token ids).</summary>
    public Tokenizer? Tokenizer { get; }
    /// <summary>Its weights.</summary>
    public ModelWeights Weights { get; }

    /// <summary>
    /// Loads a Hugging Face model directory (config.json, tokenizer.json, model.safetensors or sharded safetensors),
    /// or a GGUF v3 file (F32/F16/BF16) with a tokenizer.json beside it.
    /// </summary>
    /// <exception cref="ModelFormatException">A file is missing, malformed or does not fit the config.</exception>
    public static Task<LlamaModel> LoadAsync(string directory, IBackend backend, CancellationToken cancellationToken = default, IProgress<float>? progress = null) =>
        Task.Run(() => Load(directory, backend, cancellationToken, progress), cancellationToken);

    /// <summary>Synchronous <see cref="LoadAsync"/>.</summary>
    public static LlamaModel Load(string directory, IBackend backend, CancellationToken cancellationToken = default, IProgress<float>? progress = null)
    {
        if (File.Exists(directory) && directory.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
        {
            string tokenizerFile = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(directory))!, "tokenizer.json");
            if (!File.Exists(tokenizerFile)) throw new ModelFormatException($"{directory}: tokenizer.json must sit beside the GGUF file.");
            using var gguf = new GgufFile(directory);
            LlamaConfig ggufConfig = gguf.ReadConfig();
            return new LlamaModel(ggufConfig, Tokenizer.FromFile(tokenizerFile), ModelWeights.Load(gguf, ggufConfig, backend, cancellationToken, progress));
        }
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"model directory '{directory}' not found.");
        string configPath = Path.Combine(directory, "config.json"), tokenizerPath = Path.Combine(directory, "tokenizer.json");
        if (!File.Exists(configPath)) throw new ModelFormatException($"{directory}: config.json is missing.");
        if (!File.Exists(tokenizerPath)) throw new ModelFormatException($"{directory}: tokenizer.json is missing.");
        LlamaConfig config = LlamaConfig.FromHuggingFace(configPath);
        Tokenizer tokenizer = Tokenizer.FromFile(tokenizerPath);
        using var tensors = new ShardedSafeTensors(directory);
        return new LlamaModel(config, tokenizer, ModelWeights.Load(tensors, config, backend, cancellationToken, progress));
    }

    /// <summary>
    /// The directory of tidal-tiny, the small model bundled with this package (copied beside the application as
    /// models/tidal-tiny), or null when it is not there. For trying Tidal and for tests; its MODEL_CARD.md says what it
    /// can do.
    /// </summary>
    public static string? DefaultDirectory
    {
        get
        {
            string path = Path.Combine(AppContext.BaseDirectory, "models", "tidal-tiny");
            return File.Exists(Path.Combine(path, "config.json")) ? path : null;
        }
    }

    /// <summary>Wraps weights loaded elsewhere (e.g. random weights for benchmarks), with a tokenizer if text is needed.</summary>
    public static LlamaModel FromWeights(ModelWeights weights, Tokenizer? tokenizer = null) => new(weights.Config, tokenizer, weights);

    /// <summary>A new sequence with room for <paramref name="maxContext"/> positions (KV cache in the backend's <see cref="IBackend.KvCacheType"/> unless given).</summary>
    public Session CreateSession(int maxContext, DType? cacheType = null) => new(this, maxContext, cacheType ?? Weights.Backend.KvCacheType);

    /// <summary>Frees the weights.</summary>
    public void Dispose() => Weights.Dispose();
}
