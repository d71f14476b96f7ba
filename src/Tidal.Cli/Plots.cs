using System.CommandLine;
using ScottPlot;

namespace Tidal.Cli;

/// <summary>The PNG figures of `tidal bench` and `tidal eval`, drawn with ScottPlot: one method per figure.</summary>
internal static class Plots
{
    /// <summary>The bundled DejaVu Sans for every label, so that figures have text on machines without fonts. Registered
    /// by the first figure rather than when a command is built: registering loads SkiaSharp's native library, and a
    /// command that draws nothing (or `--help`) must run where that library is missing.</summary>
    private static readonly Lazy<bool> BundledFont = new(() =>
    {
        string file = Path.Combine(AppContext.BaseDirectory, "fonts", "DejaVuSans.ttf");
        if (!File.Exists(file)) return false; // a system font then, as ScottPlot finds one
        const string name = "Tidal Sans";
        Fonts.AddFontFile(name, file, bold: false, italic: false);
        Fonts.AddFontFile(name, file, bold: true, italic: false);
        Fonts.Default = name;
        return true;
    });

    /// <summary>A new figure, labelled in the bundled font.</summary>
    private static Plot NewPlot()
    {
        UseBundledFont();
        return new Plot();
    }

    private static void UseBundledFont()
    {
        try
        {
            _ = BundledFont.Value;
        }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException)
        {
            throw new InvalidOperationException($"--plot needs SkiaSharp's native library (libSkiaSharp), which could not be loaded on this machine: {e.GetBaseException().Message}", e);
        }
    }

    /// <summary>The --plot option of a command that can draw <paramref name="what"/>.</summary>
    public static Option<FileInfo?> Option(string what) => new("--plot") { Description = $"Also write {what} as a PNG image to this file." };

    /// <summary>Needle accuracy heat maps, one panel per (policy, question mode): depth down, context across, as in the paper.</summary>
    /// <param name="accuracy">[panel, depth, context] share of trials answered exactly, in [0, 1].</param>
    public static void Needle(string path, string[] panels, int[] contexts, double[] depths, double[,,] accuracy)
    {
        var figure = Grid(panels.Length, out int columns);
        for (int i = 0; i < panels.Length; i++)
        {
            var cells = new double[depths.Length, contexts.Length];
            for (int d = 0; d < depths.Length; d++)
                for (int c = 0; c < contexts.Length; c++)
                    cells[d, c] = accuracy[i, d, c];
            // The first row of a heat map is drawn at the top: depth 0 % there, as needle maps are read.
            Map(figure.GetPlot(i), cells, panels[i], contexts.Select(c => c.ToString()).ToArray(), "context (tokens)",
                depths.Select(d => $"{d:P0}").ToArray(), "needle depth");
        }
        Save(figure, path, panels.Length, columns);
    }

    /// <summary>Perplexity against token budget, a line per policy; full attention (no budget) as a horizontal line.</summary>
    public static void Perplexity(string path, string title, IReadOnlyList<(string Policy, int? Budget, double Perplexity)> results)
    {
        var plot = NewPlot();
        foreach (var group in results.GroupBy(r => r.Policy))
        {
            if (group.All(r => r.Budget is null))
            {
                plot.Add.HorizontalLine(group.First().Perplexity, pattern: LinePattern.Dashed).LegendText = group.Key;
                continue;
            }
            var points = group.Where(r => r.Budget is not null).OrderBy(r => r.Budget).ToArray();
            plot.Add.Scatter(points.Select(r => Math.Log2(r.Budget!.Value)).ToArray(), points.Select(r => r.Perplexity).ToArray()).LegendText = group.Key;
        }
        int[] budgets = results.Where(r => r.Budget is not null).Select(r => r.Budget!.Value).Distinct().Order().ToArray();
        PowersOfTwo(plot, budgets);
        plot.Title(title);
        plot.XLabel("token budget k");
        plot.YLabel("perplexity");
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(path, 640, 420);
    }

    /// <summary>Decode milliseconds per token against context length, a line per policy.</summary>
    public static void Bench(string path, string device, int[] contexts, string[] policies, double[,] milliseconds)
    {
        var plot = NewPlot();
        for (int p = 0; p < policies.Length; p++)
            plot.Add.Scatter(contexts.Select(c => Math.Log2(c)).ToArray(), contexts.Select((_, c) => milliseconds[c, p]).ToArray()).LegendText = policies[p];
        PowersOfTwo(plot, contexts);
        plot.Axes.SetLimitsY(0, milliseconds.Cast<double>().Max() * 1.1);
        plot.Title(device);
        plot.XLabel("context (tokens)");
        plot.YLabel("decode ms/token");
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(path, 640, 420);
    }

    /// <summary>The layer × layer overlap map (mean over heads, then each head), then the attention mass captured for
    /// each re-selection layer.</summary>
    public static void Coherence(string path, int budget, Tidal.Models.Evaluation.CoherenceReport report)
    {
        int heads = report.HeadOverlap.GetLength(0), layers = report.Overlap.GetLength(0);
        var figure = Grid(heads + 2, out int columns);
        string[] names = Enumerable.Range(0, layers).Select(l => l.ToString()).ToArray();
        for (int i = 0; i <= heads; i++)
        {
            var cells = new double[layers, layers];
            for (int a = 0; a < layers; a++)
                for (int b = 0; b < layers; b++)
                    cells[a, b] = i == 0 ? report.Overlap[a, b] : report.HeadOverlap[i - 1, a, b];
            Map(figure.GetPlot(i), cells, i == 0 ? $"top-{budget} overlap, mean of heads" : $"top-{budget} overlap, head {i - 1}",
                names, "layer (share also here)", names, "layer");
        }
        Plot mass = figure.GetPlot(heads + 1);
        int first = Tidal.Models.Evaluation.CoherenceReport.FirstCandidate;
        double[] candidates = Enumerable.Range(first, layers - first).Select(r => (double)r).ToArray();
        mass.Add.Bars(candidates, candidates.Select(r => report.CapturedMass[(int)r]).ToArray());
        mass.Axes.SetLimitsY(0, 1);
        mass.Title("attention mass captured");
        mass.XLabel("re-selection layer r");
        mass.YLabel("share of sparse layers' mass");
        Save(figure, path, heads + 2, columns);
    }

    private const int PanelWidth = 360, PanelHeight = 300;

    private static Multiplot Grid(int panels, out int columns)
    {
        columns = Math.Min(panels, 4);
        UseBundledFont();
        var figure = new Multiplot();
        figure.AddPlots(panels);
        figure.Layout = new ScottPlot.MultiplotLayouts.Grid((panels + columns - 1) / columns, columns);
        return figure;
    }

    private static void Save(Multiplot figure, string path, int panels, int columns) =>
        figure.SavePng(path, PanelWidth * columns, PanelHeight * ((panels + columns - 1) / columns));

    /// <summary>A heat-map panel of values in [0, 1] on one fixed colour scale, so that panels compare; cells[row, column]
    /// with row 0 at the top.</summary>
    private static void Map(Plot plot, double[,] cells, string title, string[] columns, string xLabel, string[] rows, string yLabel)
    {
        var heatmap = plot.Add.Heatmap(cells);
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis();
        heatmap.ManualRange = new ScottPlot.Range(0, 1);
        plot.Add.ColorBar(heatmap);
        plot.Axes.Bottom.TickGenerator = Ticks(columns, reversed: false);
        plot.Axes.Left.TickGenerator = Ticks(rows, reversed: true);
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel(yLabel);
    }

    /// <summary>Labels at cell centres 0, 1, …; a heat map's rows run top-down, so its y labels are placed reversed.</summary>
    private static ScottPlot.TickGenerators.NumericManual Ticks(string[] labels, bool reversed) =>
        new(labels.Select((_, i) => (double)(reversed ? labels.Length - 1 - i : i)).ToArray(), labels);

    /// <summary>A log2 x axis labelled with the values themselves.</summary>
    private static void PowersOfTwo(Plot plot, int[] values) =>
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(values.Select(v => Math.Log2(v)).ToArray(), values.Select(v => v.ToString()).ToArray());
}
