#!/usr/bin/env bash
# A 350m-sized checkpoint (> 2 GB: the 350m Transformer with the GPT-2 vocabulary, 1.4 GB of weights and 2.8 GB of
# AdamW moments) saved, evaluated and resumed on the CPU accelerator, each under /usr/bin/time -v for its peak host
# memory. On the CPU accelerator the "device" is host memory, so a training process holds 16 bytes per parameter
# (weights, gradients, two moments) on its own; the save and the load stream through a 16 MiB buffer, so the peak
# should exceed that by far less than one tensor (the embedding, 206 MB). Needs about 8 GiB free and a few minutes.
# Usage: tools/checkpoint-350m.sh [work-dir]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
dotnet build "$root/src/FlowHN.Cli" -c Release -v quiet -nologo >/dev/null
flowhn="$root/src/FlowHN.Cli/bin/Release/net10.0/flowhn"
run="$work/run-350m"
rm -rf "$run"
common=(--device cpu --cache "$work/cache")
peak() { grep "Maximum resident set size" "$1" | awk '{printf "%.2f GiB", $6 / 1048576}'; }

# The same run killed just before its save: its peak is the model's own (with everything the process loaded),
# so the difference to the next run's peak is what the save costs.
/usr/bin/time -v -o "$work/nosave.time" env FLOWHN_FAULT=kill:before-save "$flowhn" train "${common[@]}" --arch transformer --preset 350m \
    --data "$root/data/sample" --out "$work/nosave" --steps 2 --stop-after 1 --batch 1 --seq 32 --eval-batches 1 || true
rm -rf "$work/nosave"
/usr/bin/time -v -o "$work/train.time" "$flowhn" train "${common[@]}" --arch transformer --preset 350m --data "$root/data/sample" \
    --out "$run" --steps 2 --stop-after 1 --batch 1 --seq 32 --eval-batches 1 --log-every 1 | tee "$work/train.txt"
ls -l "$run/checkpoint"
/usr/bin/time -v -o "$work/eval.time" "$flowhn" eval --device cpu --run "$run" --data "$root/data/sample" --batch 1 --seq 32 --batches 1 \
    | tee "$work/eval.txt"
/usr/bin/time -v -o "$work/resume.time" "$flowhn" train "${common[@]}" --resume --out "$run" | tee "$work/resume.txt"
params=$(grep -o '[0-9,]* parameters' "$work/train.txt" | head -1 | tr -d ', parameters')
echo "parameters: $params (16 bytes each: $(awk -v p="$params" 'BEGIN{printf "%.2f GiB", p * 16 / 2^30}'); weights alone $(awk -v p="$params" 'BEGIN{printf "%.2f GiB", p * 4 / 2^30}'))"
echo "checkpoint files: $(du -sh "$run/checkpoint" | cut -f1)"
echo "peak host memory: train killed before its save $(peak "$work/nosave.time"), train + save $(peak "$work/train.time"), eval (load) $(peak "$work/eval.time"), resume (load + train + save) $(peak "$work/resume.time")"
