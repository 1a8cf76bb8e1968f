#!/usr/bin/env bash
# Runs inside the extracted bundle on a GPU machine: device info, every kernel against its float64 reference on
# CUDA with both matrix-product backends, then the paper's throughput table (flowhn bench) at the 135M preset, then
# FlowHN 1B at batch 8 x 1024 (the MFU and memory targets; bench.md puts measured memory next to the memory model).
# Output goes to stdout and to results/ next to this script. Usage: gpu-validate.sh [results-dir] [preset]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/results"}
preset=${2:-135m}
mkdir -p "$out"
status=0
{
    echo "# flowhn GPU validation, $(date -u +%Y-%m-%dT%H:%MZ)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || true
    "$here/flowhn" info --device cuda
} 2>&1 | tee "$out/info.txt"
"$here/flowhn" check --device cuda --gemm cublas 2>&1 | tee "$out/check-cublas.txt" || status=1
"$here/flowhn" check --device cuda --gemm ilgpu 2>&1 | tee "$out/check-ilgpu.txt" || status=1
"$here/flowhn" bench --device cuda --preset "$preset" --archs all --steps 10 --warmup 3 --breakdown \
    --out "$out/bench-$preset" 2>&1 | tee "$out/bench-$preset.txt" || status=1
"$here/flowhn" bench --device cuda --preset 1b --archs flowhn --splits none,fac --batch 8 --seq 1024 --steps 3 --warmup 1 \
    --out "$out/bench-1b" 2>&1 | tee "$out/bench-1b.txt" || status=1
exit $status
