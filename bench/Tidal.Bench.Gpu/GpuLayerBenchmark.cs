using System.Diagnostics;
using Tidal.Core;
using Tidal.Kernels;
using Tidal.Models.Config;
using Tidal.Models.Engine;

namespace Tidal.Bench.Gpu;

/// <summary>
/// `layer CONTEXT [BUDGET]`: where a decode step's time goes, per Llama-3-8B-shaped layer (random F16 weights, 4 layers,
/// 32K-token vocabulary so the LM head stays small). Three schedules are timed on the same prefilled cache:
/// all dense; layer 2 selecting; layer 2 selecting and layer 3 reusing its set. Differences between them give the cost
/// of a selection layer and of a sparse layer relative to a dense one.
/// </summary>
public static class GpuLayerBenchmark
{
    public static int Run(GpuBackend gpu, int context, int budget)
    {
        LlamaConfig config = LlamaConfig.Preset("llama-3-8b") with { Layers = 4, VocabSize = 32000, MaxPositions = context + 128 };
        using var model = LlamaModel.FromWeights(ModelWeights.Random(config, gpu, DType.F16, seed: 1));
        using Session session = model.CreateSession(context + 128);
        var random = new Random(1);
        int[] prompt = Enumerable.Range(0, context).Select(_ => random.Next(config.VocabSize)).ToArray();
        using (Session warm = model.CreateSession(512)) warm.Prefill(prompt.AsSpan(0, 256)); // kernels compile on first use, untimed
        gpu.Accelerator.Synchronize();
        var clock = Stopwatch.StartNew();
        session.Prefill(prompt);
        gpu.Accelerator.Synchronize(); // launches are queued: without this the first timed steps would wait for prefill's tail
        Console.WriteLine($"layer benchmark: {gpu.Name}; llama-3-8b layer shape, 4 layers, context {context}, budget {budget}; prefill {clock.Elapsed.TotalSeconds:F2} s ({context / clock.Elapsed.TotalSeconds:F0} tokens/s)");
        var dense = new AttentionPolicy { Name = "dense", Schedule = [LayerAttention.Dense, LayerAttention.Dense, LayerAttention.Dense, LayerAttention.Dense], TokenBudget = budget };
        var select = dense with { Name = "select", Schedule = [LayerAttention.Dense, LayerAttention.Dense, LayerAttention.DenseSelect, LayerAttention.Dense] };
        var reuse = dense with { Name = "select+reuse", Schedule = [LayerAttention.Dense, LayerAttention.Dense, LayerAttention.DenseSelect, LayerAttention.Reuse] };
        var times = new Dictionary<string, double>();
        foreach (AttentionPolicy policy in new[] { dense, select, reuse })
        {
            const int steps = 24;
            for (int i = 0; i < 4; i++) StepAndWait(session, random.Next(config.VocabSize), policy); // warm-up
            clock.Restart();
            for (int i = 0; i < steps; i++) StepAndWait(session, random.Next(config.VocabSize), policy);
            times[policy.Name] = clock.Elapsed.TotalMilliseconds / steps;
            Console.WriteLine($"  step with {policy.Name,-13} {times[policy.Name],8:F3} ms");
        }
        Console.WriteLine($"  selection layer − dense layer: {times["select"] - times["dense"],8:F3} ms");
        Console.WriteLine($"  sparse layer − dense layer:    {times["select+reuse"] - times["select"],8:F3} ms");
        return 0;
    }

    /// <summary>One decode step, then its greedy token: launches are queued, and the download waits for the step, so a
    /// timed step is the device's time, not the host's launch rate.</summary>
    private static int StepAndWait(Session session, int token, AttentionPolicy policy)
    {
        session.Step(token, policy);
        return session.Sample();
    }
}
