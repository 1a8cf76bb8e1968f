using System.CommandLine;
using FlowHN.Inference;
using FlowHN.Runtime;

namespace FlowHN.Cli.Commands;

/// <summary><c>flowhn generate</c>: continue one or more prompts with a run's checkpoint (cached decoding).</summary>
public static class GenerateCommand
{
    public static Command Create(CliConsole console)
    {
        var run = new Option<string>("--run") { Description = "Run folder holding checkpoint/ (the --out of flowhn train).", Required = true };
        var prompt = new Option<string[]>("--prompt")
        {
            Description = "Text to continue; repeat the option for several prompts (generated together, each with its own cache).",
            DefaultValueFactory = _ => ["The "],
        };
        var promptFile = new Option<string?>("--prompt-file") { Description = "Read the prompt from this UTF-8 file instead (added after any --prompt given)." };
        var tokens = CliOption.Create("--tokens", "New tokens to generate per prompt at most (it stops earlier at end of text).", 200);
        var temperature = CliOption.Create("--temperature", "Sampling temperature, >= 0 (0 = greedy).", 0.8);
        var topK = CliOption.Create("--top-k", "Sample among the k most likely tokens (0 = all).", 40);
        var topP = CliOption.Create("--top-p", "Then keep the smallest set of tokens whose probability reaches p, in (0, 1] (1 = all).", 1.0);
        var seed = CliOption.Create("--seed", "Seed of the sampler (prompt i uses seed + i).", 1);
        var maxContext = CliOption.Create("--max-context",
            "Tokens the model sees at most (0 = the trained length): a longer prompt keeps its end, leaving room for --tokens (up to half); a full context restarts from its last half.", 0);
        var noCache = new Option<bool>("--no-cache") { Description = "Run the whole context through the model for every token (slow; for comparison)." };
        var compare = new Option<bool>("--compare-uncached")
        {
            Description = "After a short warm-up and the cached run, generate again without the cache and print both speeds (and whether the tokens agree).",
        };
        var deviceOptions = new DeviceOptionSet();
        var command = new Command("generate", "Generate text from a trained checkpoint, with cached decoding for every architecture.");
        foreach (var option in new Option[] { run, prompt, promptFile, tokens, temperature, topK, topP, seed, maxContext, noCache, compare })
            command.Options.Add(option);
        deviceOptions.AddTo(command);
        command.SetAction(r =>
        {
            var sampling = new SamplingOptions(r.GetValue(temperature), r.GetValue(topK), r.GetValue(topP));
            sampling.Validate();
            if (r.GetValue(tokens) < 0) throw new UserException($"--tokens must be >= 0, got {r.GetValue(tokens)}.");
            if (r.GetValue(maxContext) is < 0 or 1)
                throw new UserException($"--max-context must be at least 2 tokens (or 0 for the trained length), got {r.GetValue(maxContext)}.");
            var texts = r.GetValue(prompt)!.ToList();
            if (r.GetValue(promptFile) is string file)
            {
                if (!File.Exists(file)) throw new UserException($"--prompt-file {file} does not exist.");
                if (r.GetResult(prompt) is not { Implicit: false }) texts.Clear();
                texts.Add(File.ReadAllText(file));
            }
            using var device = DeviceOptionSet.Open(deviceOptions.Read(r), console);
            using var loaded = RunModel.Load(device, r.GetValue(run)!);
            var tokenizer = loaded.Tokenizer;
            int context = r.GetValue(maxContext) > 0 ? r.GetValue(maxContext) : loaded.State.Options.SeqLen;
            var prompts = texts.Select(t => (IReadOnlyList<int>)tokenizer.Encode(t)).ToList();
            var options = new GenerationOptions
            {
                MaxNewTokens = r.GetValue(tokens), Sampling = sampling, Seed = r.GetValue(seed), MaxContext = context,
                StopToken = tokenizer.EndOfText, Cached = !r.GetValue(noCache),
            };
            var generator = new Generator(device, loaded.Model);
            // Speeds are compared after a short untimed run, so kernel compilation is not counted as prefill.
            if (r.GetValue(compare)) generator.Generate(prompts, options with { MaxNewTokens = 2 });
            var (results, stats) = generator.Generate(prompts, options);
            for (int i = 0; i < results.Count; i++)
            {
                var result = results[i];
                if (result.TruncatedTokens > 0)
                    console.Error.WriteLine($"note: prompt {i + 1} has {prompts[i].Count} tokens; keeping its last {result.Prompt.Length} " +
                                            $"to leave room for {options.MaxNewTokens} new in --max-context {context}");
                if (results.Count > 1) console.Out.WriteLine($"--- prompt {i + 1}");
                console.Out.WriteLine(tokenizer.Decode(result.Prompt) + tokenizer.Decode(result.Tokens) + (result.Stopped ? " [end of text]" : ""));
            }
            string mode = options.Cached ? "cached" : "uncached";
            console.Error.WriteLine(Speed(mode, stats));
            if (r.GetValue(compare) && options.Cached)
            {
                var (again, uncached) = generator.Generate(prompts, options with { Cached = false });
                bool same = again.Zip(results).All(p => p.First.Tokens.SequenceEqual(p.Second.Tokens));
                console.Error.WriteLine(Speed("uncached", uncached));
                console.Error.WriteLine($"decode speed-up {stats.DecodeTokensPerSecond / Math.Max(uncached.DecodeTokensPerSecond, 1e-9):0.0}x; " +
                                        $"tokens {(same ? "identical" : "differ (sampling from logits equal only to rounding)")}");
            }
            return 0;
        });
        return command;
    }

    private static string Speed(string mode, GenerationStats s) =>
        $"{mode}: prefill {s.PrefillTokens} tokens in {s.PrefillSeconds:0.00} s ({s.PrefillTokensPerSecond:0.0} tokens/s), " +
        $"decode {s.DecodedTokens} tokens in {s.DecodeSeconds:0.00} s ({s.DecodeTokensPerSecond:0.0} tokens/s)";
}
