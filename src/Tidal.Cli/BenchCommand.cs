using System.CommandLine;
using System.Diagnostics;
using Spectre.Console;
using Tidal.Core;
using Tidal.Core.Backends;
using Tidal.Models.Config;
using Tidal.Models.Engine;

namespace Tidal.Cli;

/// <summary>`tidal bench`: decode milliseconds per token against context length for each policy (prefill excluded).</summary>
internal static class BenchCommand
{
    public static Command Create(CliConsole console)
    {
        var models = new ModelOptions();
        var policies = new PolicyOptions();
        var shape = new Option<string?>("--shape")
        {
            Description = "Instead of --model, random F16 weights of a named shape: llama-3-8b, llama-3.1-8b, llama-2-7b or tiny. " +
                "The context is then a random KV cache rather than a prefill (decode time depends on its length, not its values).",
        };
        var layers = new Option<int?>("--layers") { Description = "With --shape: use only this many layers (to fit memory); each still has the full shape." };
        var contexts = new Option<string>("--contexts") { Description = "Comma-separated context lengths to measure at.", DefaultValueFactory = _ => "1024,2048,4096" };
        var names = new Option<string>("--policies") { Description = "Comma-separated policies: full, tidal, quest.", DefaultValueFactory = _ => "full,tidal,quest" };
        var steps = new Option<int>("--steps") { Description = "Timed decode steps per policy and context (after 2 warm-up steps).", DefaultValueFactory = _ => 16 };
        var plot = Plots.Option("ms/token against context for each policy");
        var command = new Command("bench", "Measure decode ms/token against context length for each policy, prefill excluded; prints a table.");
        foreach (Option option in new Option[] { shape, layers, contexts, names, steps, plot }) command.Options.Add(option);
        policies.AddTo(command);
        models.AddTo(command);
        command.SetAction(async (parsed, cancellationToken) =>
        {
            int[] lengths = Lists.Positive(parsed.GetValue(contexts)!, "--contexts");
            string[] policyNames = Lists.Split(parsed.GetValue(names)!, "--policies");
            int timed = parsed.GetValue(steps);
            if (timed <= 0) throw new ArgumentException($"--steps must be > 0, got {timed}.");
            int capacity = lengths.Max() + (timed + 2) * policyNames.Length + 1;
            using IBackend backend = models.OpenBackend(parsed);
            using LlamaModel model = await OpenModel(console, parsed, models, shape, layers, backend, capacity, cancellationToken);
            if (capacity > model.Config.MaxPositions)
                throw new ArgumentException($"the longest context plus the timed steps ({capacity}) exceeds the model's {model.Config.MaxPositions} positions.");
            AttentionPolicy[] attention = policyNames.Select(n => policies.Build(parsed, n, model.Config.Layers)).ToArray();
            console.Errors.WriteLine($"{backend.Name}; {model.Config.Layers} layers; budget {parsed.GetValue(policies.Budget)}");
            var table = new Table().AddColumn("context");
            foreach (AttentionPolicy p in attention) table.AddColumn(new TableColumn($"{p.Name} ms/token").RightAligned());
            var random = new Random(1);
            var milliseconds = new double[lengths.Length, attention.Length];
            for (int c = 0; c < lengths.Length; c++)
            {
                int length = lengths[c];
                cancellationToken.ThrowIfCancellationRequested();
                using Session session = model.CreateSession(capacity);
                if (parsed.GetValue(shape) is not null)
                    session.FillRandomContext(length, seed: (ulong)length);
                else
                {
                    int[] prompt = Enumerable.Range(0, length).Select(_ => random.Next(model.Config.VocabSize)).ToArray();
                    await console.Status.Status().StartAsync($"prefilling {length} tokens", _ => Task.Run(() => session.Prefill(prompt), cancellationToken));
                }
                for (int a = 0; a < attention.Length; a++)
                {
                    AttentionPolicy p = attention[a];
                    int token = session.Sample();
                    for (int i = 0; i < 2; i++) { session.Step(token, p); token = session.Sample(); }
                    var clock = Stopwatch.StartNew();
                    for (int i = 0; i < timed; i++)
                    {
                        cancellationToken.ThrowIfCancellationRequested();
                        session.Step(token, p);
                        token = session.Sample(); // waits for the step: the time is the device's, not the launches'
                    }
                    milliseconds[c, a] = clock.Elapsed.TotalMilliseconds / timed;
                }
                table.AddRow([length.ToString(), .. Enumerable.Range(0, attention.Length).Select(a => $"{milliseconds[c, a]:F3}")]);
            }
            console.Tables.Write(table);
            if (parsed.GetValue(plot) is FileInfo file)
                Plots.Bench(file.FullName, $"{backend.Name}, {model.Config.Layers} layers", lengths, attention.Select(p => p.Name).ToArray(), milliseconds);
            return 0;
        });
        return command;
    }

    private static async Task<LlamaModel> OpenModel(CliConsole console, ParseResult parsed, ModelOptions models, Option<string?> shape, Option<int?> layers,
        IBackend backend, int capacity, CancellationToken cancellationToken)
    {
        if (parsed.GetValue(shape) is not string name)
            return await ModelOptions.LoadAsync(console, ModelOptions.ModelPath(parsed.GetValue(models.Model)), backend, cancellationToken);
        if (parsed.GetValue(models.Model) is not null) throw new ArgumentException("give either --model or --shape, not both.");
        LlamaConfig config = LlamaConfig.Preset(name);
        config = config with { MaxPositions = Math.Max(config.MaxPositions, capacity) };
        if (parsed.GetValue(layers) is int n) config = config with { Layers = n > 0 ? n : throw new ArgumentException($"--layers must be > 0, got {n}.") };
        return LlamaModel.FromWeights(ModelWeights.Random(config, backend, DType.F16, seed: 1));
    }
}
