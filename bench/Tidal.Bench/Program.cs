using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using Tidal.Bench;

// CPU microbenchmarks of the SIMD reference, with achieved GB/s beside the streaming-read bandwidth of the same run:
//   dotnet run -c Release --project bench/Tidal.Bench -- cpu [--quick]
// GPU verification and benchmarks live in bench/Tidal.Bench.Gpu.
// Any other arguments go to BenchmarkDotNet's switcher (e.g. --filter '*Gemv*').
switch (args)
{
    case ["cpu", .. var rest]:
        IConfig config = DefaultConfig.Instance
            .AddJob(Job.Default.WithWarmupCount(3).WithIterationCount(rest is ["--quick"] ? 3 : 10))
            .AddColumn(new BandwidthColumn(), new PeakShareColumn())
            .WithOptions(ConfigOptions.JoinSummary);
        BenchmarkRunner.Run([typeof(StreamReadBenchmark), typeof(GemvBenchmark), typeof(MatMulBenchmark), typeof(AttentionBenchmark), typeof(TopKBenchmark)], config);
        return 0;
    default:
        BenchmarkSwitcher.FromAssembly(typeof(BandwidthColumn).Assembly).Run(args);
        return 0;
}
