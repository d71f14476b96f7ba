using System.Text.Json;
using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Kernels;
using Tidal.Models.Engine;

namespace Tidal.Bench.Gpu;

/// <summary>
/// `engine`: tidal-tiny decoded greedily on the GPU backend and on the CPU reference (both with F16 KV caches) from the
/// golden needle prompt, for Full and TidalDecode: tokens must agree at every step; logits are compared too.
/// </summary>
public static class GpuEngineCheck
{
    public static int Run(GpuBackend gpu, string modelDir, int steps)
    {
        using var cpuModel = LlamaModel.Load(modelDir, new CpuBackend());
        using var gpuModel = LlamaModel.Load(modelDir, gpu);
        using var golden = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(modelDir, "golden.json")));
        int[] prompt = golden.RootElement.GetProperty("prompts").EnumerateArray().First(p => p.GetProperty("name").GetString() == "needle-1500")
            .GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int layers = cpuModel.Config.Layers;
        bool ok = true;
        Console.WriteLine($"engine: tidal-tiny, {gpu.Name} vs CPU reference, prompt {prompt.Length} tokens, {steps} greedy steps, F16 KV caches");
        foreach (AttentionPolicy policy in new[] { AttentionPolicy.Full(layers), AttentionPolicy.TidalDecode(layers, 256), AttentionPolicy.TidalDecode(layers, 256, scope: SelectionScope.KvHead), AttentionPolicy.Quest(layers, 256) })
        {
            using Session cpu = cpuModel.CreateSession(prompt.Length + steps + 1, DType.F16), dev = gpuModel.CreateSession(prompt.Length + steps + 1);
            cpu.Prefill(prompt);
            dev.Prefill(prompt);
            int agree = 0, bitwise = 0;
            float maxDiff = 0;
            for (int step = 0; step < steps; step++)
            {
                int a = Core.Reference.Elementwise.Argmax(cpu.Logits), b = Core.Reference.Elementwise.Argmax(dev.Logits);
                if (a == b) agree++;
                bool same = true;
                for (int i = 0; i < cpu.Logits.Length; i++)
                {
                    maxDiff = Math.Max(maxDiff, Math.Abs(cpu.Logits[i] - dev.Logits[i]));
                    same &= BitConverter.SingleToInt32Bits(cpu.Logits[i]) == BitConverter.SingleToInt32Bits(dev.Logits[i]);
                }
                if (same) bitwise++;
                cpu.Step(a, policy);
                dev.Step(a, policy);
            }
            ok &= agree == steps;
            string label = policy.Name + (policy.Scope == SelectionScope.KvHead ? " (kv-head)" : "");
            Console.WriteLine($"  {label,-16} greedy tokens agree {agree}/{steps}, logits bit-identical at {bitwise}/{steps} steps, max |diff| {maxDiff:E2}");
        }
        return ok ? 0 : 1;
    }
}
