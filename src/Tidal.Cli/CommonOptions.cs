using System.CommandLine;
using Spectre.Console;
using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Kernels;
using Tidal.Kernels.Accelerators;
using Tidal.Models.Engine;

namespace Tidal.Cli;

/// <summary>Options every command shares: which model, on which device.</summary>
internal sealed class ModelOptions
{
    public Option<string?> Model { get; } = new("--model", "-m")
    {
        Description = "A Hugging Face model directory (config.json, tokenizer.json, safetensors) or a GGUF v3 file with tokenizer.json beside it. Default: the bundled tidal-tiny model.",
    };

    public Option<string> Device { get; } = new Option<string>("--device")
    {
        Description = "Where to decode: auto (CUDA when a GPU is usable, else the SIMD CPU engine), cpu, or cuda (an error without a GPU).",
        DefaultValueFactory = _ => "auto",
    }.AcceptOnlyFromAmong("auto", "cpu", "cuda");

    public Option<string> KvCache { get; } = new Option<string>("--kv-cache")
    {
        Description = "KV cache dtype: auto (the device's own: F32 on the CPU, F16 on CUDA), f32 (CPU only) or f16 (on the CPU: reproduces a CUDA run's numbers to the bit).",
        DefaultValueFactory = _ => "auto",
    }.AcceptOnlyFromAmong("auto", "f32", "f16");

    public void AddTo(Command command)
    {
        command.Options.Add(Model);
        command.Options.Add(Device);
        command.Options.Add(KvCache);
    }

    /// <summary>The backend --device names, keeping KV caches as --kv-cache says.</summary>
    public IBackend OpenBackend(ParseResult parsed)
    {
        string device = parsed.GetValue(Device)!, cache = parsed.GetValue(KvCache)!;
        IBackend backend = device switch
        {
            "cpu" => Cpu(cache),
            "cuda" => Compiled(new GpuBackend(DeviceKind.Cuda)),
            _ => CudaOrCpu(cache),
        };
        if (cache == "f32" && backend.KvCacheType != DType.F32)
        {
            backend.Dispose();
            throw new ArgumentException("--kv-cache f32: the CUDA engine keeps KV caches in F16 (use --device cpu for F32 caches).");
        }
        return backend;
    }

    /// <summary>The backend with its kernels compiled, so that the speeds the commands print exclude compilation.</summary>
    private static GpuBackend Compiled(GpuBackend gpu)
    {
        try
        {
            gpu.CompileAll();
            return gpu;
        }
        catch
        {
            gpu.Dispose();
            throw;
        }
    }

    private static CpuBackend Cpu(string cache) => new(cache == "f16" ? DType.F16 : DType.F32);

    private static IBackend CudaOrCpu(string cache)
    {
        try
        {
            return Compiled(new GpuBackend(DeviceKind.Cuda));
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or DllNotFoundException or TypeInitializationException)
        {
            return Cpu(cache);
        }
    }

    public static string ModelPath(string? given) =>
        given ?? LlamaModel.DefaultDirectory ?? throw new FileNotFoundException("the bundled tidal-tiny model is missing next to the program; pass --model.");

    /// <summary>Loads with a progress bar on the status console.</summary>
    public static async Task<LlamaModel> LoadAsync(CliConsole console, string path, IBackend backend, CancellationToken cancellationToken)
    {
        LlamaModel? model = null;
        await console.Status.Progress().AutoClear(true).StartAsync(async context =>
        {
            ProgressTask task = context.AddTask($"loading {Path.GetFileName(Path.TrimEndingDirectorySeparator(path))}", maxValue: 1);
            model = await LlamaModel.LoadAsync(path, backend, cancellationToken, new Progress<float>(f => task.Value = f));
            task.Value = 1;
        });
        return model!;
    }
}

/// <summary>Options that shape the attention policy.</summary>
internal sealed class PolicyOptions
{
    public Option<int> Budget { get; } = new("--budget", "-k")
    {
        Description = "Tokens each sparse layer attends to (TidalDecode: per selection; Quest: budget/16 pages of 16 tokens).",
        DefaultValueFactory = _ => 256,
    };

    public Option<int?> ReselectLayer { get; } = new("--reselect-layer")
    {
        Description = "TidalDecode's re-selection layer r (dense attention and a new token set). Default: 40% of the depth (13 of 32).",
    };

    public Option<string> SelectBy { get; } = new Option<string>("--select-by")
    {
        Description = "TidalDecode's token sets: qhead (one per query head, as the paper) or kvhead (one per KV head, shared by its GQA group: fewer bytes).",
        DefaultValueFactory = _ => "qhead",
    }.AcceptOnlyFromAmong("qhead", "kvhead");

    public Option<int> CorrectionInterval { get; } = new("--correction-interval")
    {
        Description = "Cache correction: every this many decode steps, recompute the K/V of sparsely decoded tokens densely (0: off).",
        DefaultValueFactory = _ => 0,
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Budget);
        command.Options.Add(ReselectLayer);
        command.Options.Add(SelectBy);
        command.Options.Add(CorrectionInterval);
    }

    /// <summary>The policy named <paramref name="name"/> (full, tidal or quest) for a model of <paramref name="layers"/>
    /// layers, with <paramref name="budget"/> tokens (default: --budget); the factories validate every value.</summary>
    public AttentionPolicy Build(ParseResult parsed, string name, int layers, int? budget = null)
    {
        int k = budget ?? parsed.GetValue(Budget), correction = parsed.GetValue(CorrectionInterval);
        if (correction < 0) throw new ArgumentException($"--correction-interval must be >= 0, got {correction}.");
        return name switch
        {
            "full" => AttentionPolicy.Full(layers),
            "tidal" => AttentionPolicy.TidalDecode(layers, k, parsed.GetValue(ReselectLayer),
                parsed.GetValue(SelectBy) == "kvhead" ? SelectionScope.KvHead : SelectionScope.QueryHead, correctionInterval: correction),
            "quest" => AttentionPolicy.Quest(layers, k) with { CorrectionInterval = correction },
            _ => throw new ArgumentException($"unknown policy '{name}' (full, tidal, quest)."),
        };
    }
}

/// <summary>Comma-separated option values.</summary>
internal static class Lists
{
    public static string[] Split(string value, string option)
    {
        string[] items = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return items.Length > 0 ? items : throw new ArgumentException($"{option} is empty.");
    }

    public static int[] Positive(string value, string option) =>
        Split(value, option).Select(s => int.TryParse(s, out int n) && n > 0 ? n : throw new ArgumentException($"{option}: '{s}' is not a positive integer.")).ToArray();
}
