#!/usr/bin/env bash
# A short quality comparison of Mamba-1 and Mamba-2 on the CPU: the tiny preset on the committed sample, the same
# steps, batch, learning rate and seed for every model (so the same tokens in the same order): mamba vs mamba2, and
# flowhn with --split none and fac, each with --ssm mamba1 and mamba2. Writes a markdown table of the final
# validation loss and training tokens/s to benchmarks/results/ (labelled CPU; the numbers say how far each trained,
# not how the models compare at scale).
#   usage: tools/compare-ssm-cpu.sh [steps] [out.md]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-40}
out=${2:-benchmarks/results/$(date -u +%Y-%m-%d)-cpu-ssm-quality-tiny.md}
dotnet build src/FlowHN.Cli -c Release -v quiet -nologo >/dev/null
flowhn=(dotnet src/FlowHN.Cli/bin/Release/net10.0/flowhn.dll)
runs=$(mktemp -d)
rows=""
run() { # label, then train options
    local label=$1; shift
    local dir="$runs/$(echo "$label" | tr ' /+' '___')"
    local start end
    start=$(date +%s)
    "${flowhn[@]}" train --preset tiny --steps "$steps" --lr 2e-3 --seed 7 --eval-every "$steps" --out "$dir" "$@" >"$dir.log" 2>&1
    end=$(date +%s)
    local val tps params
    val=$(grep '"type":"eval"' "$dir/metrics.jsonl" | tail -n 1 | sed 's/.*"val_loss":\([0-9.]*\).*/\1/')
    tps=$(grep '"type":"train"' "$dir/metrics.jsonl" | tail -n 1 | sed 's/.*"tokens_per_s":\([0-9.]*\).*/\1/')
    params=$(sed -n 's/^model: [^,]*, \([0-9,]*\) parameters.*/\1/p' "$dir.log")
    rows+=$(printf '| %s | `%s` | %s | %.4f | %.0f | %d |' "$label" "$*" "$params" "$val" "$tps" $((end - start)))$'\n'
    echo "$label: val loss $val, $tps tok/s, $((end - start)) s"
}
run "mamba" --arch mamba
run "mamba2" --arch mamba2
run "flowhn none, mamba1" --arch flowhn --split none --ssm mamba1
run "flowhn none, mamba2" --arch flowhn --split none --ssm mamba2
run "flowhn fac, mamba1" --arch flowhn --split fac --ssm mamba1
run "flowhn fac, mamba2" --arch flowhn --split fac --ssm mamba2
{
    echo "# Mamba-1 vs Mamba-2 on the CPU: tiny preset, sample data"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M') UTC; commit: $(git rev-parse --short HEAD)"
    echo "- device: ILGPU CPU accelerator, $(nproc) cores (shared with other work, so tokens/s are rough)"
    echo "- command: \`tools/compare-ssm-cpu.sh $steps\`: each model trained $steps steps of 8 x 128 tokens ($((steps * 1024)) tokens),"
    echo "  lr 2e-3, seed 7, the same data order; validation loss after the last step (8 batches of the validation split)"
    echo "- this is a few minutes of training on a CPU: it shows that every variant trains, not which is better at scale"
    echo
    echo "| model | options | parameters | val loss | train tok/s | wall s |"
    echo "|---|---|---:|---:|---:|---:|"
    printf '%s' "$rows"
} >"$out"
echo "wrote $out"
