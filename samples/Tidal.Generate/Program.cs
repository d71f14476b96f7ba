// Streams a greedy continuation from a Llama model with a chosen attention policy.
//   dotnet run -c Release --project samples/Tidal.Generate -- [--model DIR] [--policy full|tidal|quest] [--budget K]
//                                                             [--max-tokens N] [--cuda] [PROMPT]
// Without --model it uses models/tidal-tiny from this repository.
using System.Diagnostics;
using Tidal.Core.Backends;
using Tidal.Kernels;
using Tidal.Kernels.Accelerators;
using Tidal.Models.Engine;

string model = Path.Combine(FindRepositoryRoot(), "models", "tidal-tiny"), policyName = "tidal", prompt = "In the beginning God created the heaven and the earth.";
int budget = 256, maxTokens = 64;
bool cuda = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--model": model = args[++i]; break;
        case "--policy": policyName = args[++i]; break;
        case "--budget": budget = int.Parse(args[++i]); break;
        case "--max-tokens": maxTokens = int.Parse(args[++i]); break;
        case "--cuda": cuda = true; break;
        case "--help" or "-h":
            Console.WriteLine("usage: Tidal.Generate [--model DIR] [--policy full|tidal|quest] [--budget K] [--max-tokens N] [--cuda] [PROMPT]");
            return 0;
        default: prompt = args[i]; break;
    }
}

using IBackend backend = cuda ? new GpuBackend(DeviceKind.Cuda) : new CpuBackend();
using LlamaModel llama = LlamaModel.Load(model, backend);
int layers = llama.Config.Layers;
AttentionPolicy policy = policyName switch
{
    "full" => AttentionPolicy.Full(layers),
    "tidal" => AttentionPolicy.TidalDecode(layers, budget),
    "quest" => AttentionPolicy.Quest(layers, budget),
    _ => throw new ArgumentException($"unknown policy '{policyName}' (full, tidal, quest)"),
};
Console.Error.WriteLine($"{backend.Name}; policy {policy.Name}, budget {budget}");
using Session session = llama.CreateSession(Math.Min(llama.Config.MaxPositions, 4096));
Console.Write(prompt);
var clock = Stopwatch.StartNew();
int generated = 0;
await foreach (GeneratedToken token in session.GenerateAsync(prompt, new GenerationOptions { MaxNewTokens = maxTokens, Policy = policy }))
{
    Console.Write(token.Text);
    generated++;
}
Console.WriteLine();
Console.Error.WriteLine($"{generated} tokens in {clock.Elapsed.TotalSeconds:F2} s ({generated / clock.Elapsed.TotalSeconds:F1} tokens/s, prefill included)");
return 0;

static string FindRepositoryRoot()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, "Tidal.sln"))) return dir.FullName;
    return Directory.GetCurrentDirectory();
}
