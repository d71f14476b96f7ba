using System.CommandLine;
using Spectre.Console;

namespace Tidal.Cli;

/// <summary>The tidal command line: parsing, dispatch and error reporting, writing to the given streams.</summary>
public static class TidalCli
{
    /// <summary>Runs the command line <paramref name="args"/>: generated text and tables go to <paramref name="output"/>,
    /// progress, statistics and errors to <paramref name="errors"/>. Ctrl+C cancels the running command cleanly.</summary>
    /// <returns>The exit code: 0 on success, 1 on an error (one line; with --verbose the stack trace too), 130 when cancelled.</returns>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter errors, CancellationToken cancellationToken = default)
    {
        var verbose = new Option<bool>("--verbose") { Description = "Print the stack trace with an error.", Recursive = true };
        var root = new RootCommand("Tidal: fast long-context LLM decoding with TidalDecode (position persistent sparse attention), " +
            "with full attention and Quest as baselines. Without --model the bundled tidal-tiny model is used.");
        root.Options.Add(verbose);
        var console = new CliConsole(output, errors);
        root.Subcommands.Add(GenerateCommand.Create(console));
        root.Subcommands.Add(BenchCommand.Create(console));
        root.Subcommands.Add(EvalCommand.Create(console));
        ParseResult parsed = root.Parse(args);
        var configuration = new InvocationConfiguration { Output = output, Error = errors, EnableDefaultExceptionHandler = false };
        try
        {
            return await parsed.InvokeAsync(configuration, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            errors.WriteLine("cancelled");
            return 130;
        }
        catch (Exception e)
        {
            errors.WriteLine(parsed.GetValue(verbose) ? e.ToString() : $"error: {e.Message}");
            return 1;
        }
    }
}

/// <summary>Where a command writes: plain text to <see cref="Output"/>; progress and tables through Spectre.Console on
/// <see cref="Status"/> (the error stream, so piped output stays clean).</summary>
internal sealed class CliConsole(TextWriter output, TextWriter errors)
{
    public TextWriter Output { get; } = output;
    public TextWriter Errors { get; } = errors;
    public IAnsiConsole Status { get; } = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(errors) });
    public IAnsiConsole Tables { get; } = Wide(AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(output) }));

    /// <summary>Tables are results: wide enough for a layer × layer matrix even when the output is a pipe or a file.</summary>
    private static IAnsiConsole Wide(IAnsiConsole console)
    {
        console.Profile.Width = Math.Max(console.Profile.Width, 240);
        return console;
    }
}
