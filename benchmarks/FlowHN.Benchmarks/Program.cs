using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;
using FlowHN.Benchmarks;

// Usage: dotnet run -c Release --project benchmarks/FlowHN.Benchmarks -- [--device auto|cuda|cpu] [BenchmarkDotNet options]
// The device is handed to BenchmarkDotNet's child processes through an environment variable.
var rest = BenchmarkDevice.TakeDeviceArgument(args);
var config = DefaultConfig.Instance.AddColumn(new ThroughputColumn());
BenchmarkSwitcher.FromAssembly(typeof(GemmBenchmarks).Assembly).Run(rest, config);
