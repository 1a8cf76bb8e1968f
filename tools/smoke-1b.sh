#!/usr/bin/env bash
# One training step of FlowHN 1b (no split: 1.11 billion parameters, above the 2^30 elements one kernel launch
# indexes) on the CPU accelerator at batch 1 x 16: the flat parameter, gradient and moment buffers (about 18 GB
# together) go through the chunked gradient norm, AdamW and zeroing, then one evaluation and a checkpoint.
# The process holds 19.7 GB through the step and passes 20.7 GB while it writes the 13 GB checkpoint, so it needs
# 22 GiB of available memory and 15 GB of disk; exits 77 (skipped) with a message when the memory is not there.
# Usage: tools/smoke-1b.sh [work-dir]   (FLOWHN_SMOKE_GIB overrides the memory needed)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
need=${FLOWHN_SMOKE_GIB:-22}
available=$(awk '/^MemAvailable:/ {print int($2 / 1048576)}' /proc/meminfo)
if (( available < need )); then
    echo "smoke-1b: skipped: needs $need GiB of available memory, $available GiB available" >&2
    exit 77
fi
work=${1:-$(mktemp -d)}
trap 'rm -rf "$work/run" "$work/cache"' EXIT
dotnet build "$root/src/FlowHN.Cli" -c Release -v quiet -nologo
flowhn="$root/src/FlowHN.Cli/bin/Release/net10.0/flowhn.dll"
cd "$root"
/usr/bin/env time -v dotnet "$flowhn" train --device cpu --arch flowhn --preset 1b --split none --batch 1 --seq 16 \
    --steps 1 --eval-batches 1 --data data/sample --cache "$work/cache" --out "$work/run" 2>&1 |
    grep --line-buffered -v -E '^\s+(Average|Major|Minor|Voluntary|Involuntary|Swaps|File system|Socket|Signals|Page size|Exit status|Percent|Command)'
line=$(grep '"type":"train"' "$work/run/metrics.jsonl" | grep '"step":1,')
echo "$line"
echo "smoke-1b: passed (train exits with an error on a non-finite loss)"
