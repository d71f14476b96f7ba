// A program that uses Tidal as a NuGet package: streams a TidalDecode continuation from the bundled tidal-tiny model.
//   dotnet run -c Release --project samples/Tidal.Generate -- [--cuda] [--max-tokens N] [PROMPT]
// (after `dotnet pack Tidal.sln -c Release -o artifacts/packages`; .ci/run does both).
using Tidal.Core.Backends;
using Tidal.Kernels;
using Tidal.Kernels.Accelerators;
using Tidal.Models.Engine;

string prompt = "The pass key for ORION is";
int maxTokens = 16;
bool cuda = false;
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--cuda") cuda = true;
    else if (args[i] == "--max-tokens") maxTokens = int.Parse(args[++i]);
    else prompt = args[i];
}

using IBackend backend = cuda ? new GpuBackend(DeviceKind.Cuda) : new CpuBackend();
using LlamaModel model = LlamaModel.Load(LlamaModel.DefaultDirectory ?? throw new FileNotFoundException("tidal-tiny is not beside the program"), backend);
using Session session = model.CreateSession(1024);
var options = new GenerationOptions { MaxNewTokens = maxTokens, Policy = AttentionPolicy.TidalDecode(model.Config.Layers, budget: 128) };
Console.Write(prompt);
await foreach (GeneratedToken token in session.GenerateAsync(prompt, options)) Console.Write(token.Text);
Console.WriteLine();
return 0;
