using System.Collections.Concurrent;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Tidal.Bench;

/// <summary>Bytes each benchmark must move per operation, registered by the benchmark classes.</summary>
public static class BytesMoved
{
    private static readonly ConcurrentDictionary<string, long> Bytes = new();

    public static void Register(string benchmark, long bytes) => Bytes[benchmark] = bytes;

    public static long? Of(BenchmarkCase benchmark)
    {
        // Benchmarks run in their own process; the class registers its sizes in a static constructor, so touching
        // the type here (in the host process) fills the table.
        System.Runtime.CompilerServices.RuntimeHelpers.RunClassConstructor(benchmark.Descriptor.Type.TypeHandle);
        return Bytes.TryGetValue(benchmark.Descriptor.WorkloadMethod.Name, out long b) ? b : null;
    }

    public static double? GigabytesPerSecond(Summary summary, BenchmarkCase benchmark)
    {
        long? bytes = Of(benchmark);
        double? ns = summary[benchmark]?.ResultStatistics?.Mean;
        return bytes is null || ns is null ? null : bytes.Value / ns.Value;
    }
}

/// <summary>Achieved GB/s: bytes the operation must read or write, over its mean time.</summary>
public sealed class BandwidthColumn : IColumn
{
    public string Id => "GBps";
    public string ColumnName => "GB/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Bytes moved per operation / mean time";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) =>
        BytesMoved.GigabytesPerSecond(summary, benchmarkCase)?.ToString("F2") ?? "-";
}

/// <summary>GB/s as a share of the streaming-read benchmark's GB/s in the same run.</summary>
public sealed class PeakShareColumn : IColumn
{
    public string Id => "PeakShare";
    public string ColumnName => "% of stream read";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 1;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "GB/s relative to StreamRead (the machine's measured read bandwidth) in this run";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        BenchmarkCase? stream = summary.Reports.Select(r => r.BenchmarkCase).FirstOrDefault(b => b.Descriptor.WorkloadMethod.Name == nameof(StreamReadBenchmark.StreamRead));
        double? peak = stream is null ? null : BytesMoved.GigabytesPerSecond(summary, stream);
        double? mine = BytesMoved.GigabytesPerSecond(summary, benchmarkCase);
        return peak is null || mine is null ? "-" : $"{100 * mine.Value / peak.Value:F0}%";
    }
}
