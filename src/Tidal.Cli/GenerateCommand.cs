using System.CommandLine;
using System.Diagnostics;
using Tidal.Core.Backends;
using Tidal.Models.Engine;

namespace Tidal.Cli;

/// <summary>`tidal generate`: streams a continuation, then prints prefill and decode speed.</summary>
internal static class GenerateCommand
{
    public static Command Create(CliConsole console)
    {
        var models = new ModelOptions();
        var policies = new PolicyOptions();
        var prompt = new Option<string?>("--prompt", "-p") { Description = "The prompt text." };
        var promptFile = new Option<FileInfo?>("--prompt-file") { Description = "Read the prompt from this UTF-8 text file instead." };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Tokens to generate at most (fewer if the model ends the text).", DefaultValueFactory = _ => 128 };
        var temperature = new Option<float>("--temperature", "-t") { Description = "Sampling temperature; 0 decodes greedily.", DefaultValueFactory = _ => 0f };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling: draw from the most probable tokens whose probability reaches this (1: all).", DefaultValueFactory = _ => 1f };
        var seed = new Option<int?>("--seed") { Description = "Seed of the sampler, for repeatable draws (default: random)." };
        var policy = new Option<string>("--policy")
        {
            Description = "Attention while decoding: full (dense everywhere), tidal (TidalDecode) or quest (Quest's page selection). Prefill is always dense.",
            DefaultValueFactory = _ => "tidal",
        }.AcceptOnlyFromAmong("full", "tidal", "quest");
        var command = new Command("generate", "Stream a continuation of a prompt, then print prefill and decode speed (tokens/s).");
        foreach (Option option in new Option[] { prompt, promptFile, maxTokens, temperature, topP, seed, policy }) command.Options.Add(option);
        policies.AddTo(command);
        models.AddTo(command);
        command.SetAction(async (parsed, cancellationToken) =>
        {
            string text = parsed.GetValue(promptFile) is FileInfo file ? await File.ReadAllTextAsync(file.FullName, cancellationToken)
                : parsed.GetValue(prompt) ?? throw new ArgumentException("give the prompt with --prompt or --prompt-file.");
            int tokens = parsed.GetValue(maxTokens);
            if (tokens <= 0) throw new ArgumentException($"--max-tokens must be > 0, got {tokens}.");
            using IBackend backend = models.OpenBackend(parsed);
            using LlamaModel model = await ModelOptions.LoadAsync(console, ModelOptions.ModelPath(parsed.GetValue(models.Model)), backend, cancellationToken);
            AttentionPolicy attention = policies.Build(parsed, parsed.GetValue(policy)!, model.Config.Layers);
            int promptTokens = model.Tokenizer!.Encode(text, addSpecialTokens: true).Length;
            int context = Math.Min(model.Config.MaxPositions, promptTokens + tokens);
            console.Errors.WriteLine($"{backend.Name}; {model.Config.Layers} layers; policy {attention.Name}" +
                (attention.Name == "full" ? "" : $", budget {attention.TokenBudget}") + $"; prompt {promptTokens} tokens");
            using Session session = model.CreateSession(context);
            var options = new GenerationOptions
            {
                MaxNewTokens = Math.Min(tokens, context - promptTokens), Temperature = parsed.GetValue(temperature), TopP = parsed.GetValue(topP),
                Seed = parsed.GetValue(seed), Policy = attention,
            };
            var clock = Stopwatch.StartNew();
            double prefillSeconds = 0;
            int generated = 0;
            await foreach (GeneratedToken token in session.GenerateAsync(text, options, cancellationToken))
            {
                if (generated == 0 && token.Id >= 0) prefillSeconds = clock.Elapsed.TotalSeconds;
                if (token.Id >= 0) generated++;
                console.Output.Write(token.Text);
                await console.Output.FlushAsync(cancellationToken);
            }
            double decodeSeconds = clock.Elapsed.TotalSeconds - prefillSeconds;
            console.Output.WriteLine();
            console.Errors.WriteLine($"prefill: {promptTokens} tokens in {prefillSeconds:F2} s ({promptTokens / Math.Max(prefillSeconds, 1e-9):F1} tokens/s, first token included); " +
                $"decode: {Math.Max(generated - 1, 0)} tokens in {decodeSeconds:F2} s ({Math.Max(generated - 1, 0) / Math.Max(decodeSeconds, 1e-9):F1} tokens/s)");
            return 0;
        });
        return command;
    }
}
