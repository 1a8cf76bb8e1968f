#!/usr/bin/env bash
# Runs inside the extracted bundle (tools/publish-gpu.sh) on a GPU machine with the NVIDIA driver and no .NET, and
# answers in one short run what a GPU lease is for: does every kernel match its float64 reference on CUDA, how fast
# is a training step at 135M (fp32 and TF32) and at 1B, where does the time go (an nsys trace), on what exactly
# (GPU clocks and power, driver, cuBLAS file and version, ILGPU's PTX ISA, the bundle's commit).
#
# Usage: gpu-validate.sh [--dry-run] [output-dir]     (output-dir: the argument, else $OUT, else ./results here)
#
# Every stage runs under `timeout` and writes its files as soon as it ends, so a lease cut short still leaves what
# was measured; stages.tsv lists each stage's status and seconds. The whole run also keeps to a total budget
# (FLOWHN_VALIDATE_BUDGET seconds, default 540 = 9 minutes): a stage gets at most what remains of it, and 1B runs
# last because it is the longest and the most likely to fail.
#
# Time estimate on an H100 (no GPU has run this code yet; from the step-time predictions of the GPU-readiness and
# hot-path issues and the step counts below; every flowhn process also pays start-up, roughly 20-40 s to compile
# the ~50 kernels through ILGPU and the driver's PTX JIT):
#   env        nvidia-smi and `flowhn info` (compiles the GEMM kernel only)                      ~15 s
#   check      first the branch streams: the SSM branch's stream must report the device's highest priority
#              (cuStreamGetPriority) and compute right; then every kernel on CUDA at GPU sizes vs float64 host references (the largest: the
#              scan at 135M's 8x1024x1536x16, attention at head dims 24/64/128, cross-entropy over
#              257 x 50,257; about a minute of single-threaded host float64 in all)             ~90 s
#   nccl       data parallelism's NCCL path on one GPU: a tiny transformer 5 steps plain, then with
#              --dp-backend nccl in the process alone (and under `mpirun -np 1` when mpirun exists); the
#              losses must be identical (a sum over one rank is the identity); 2-3 processes x ~30 s   ~90 s
#   135m fp32  7 models (flowhn none/fac, transformer, mamba, shm, jamba, hymba) x (2 warm-up + 5 timed
#              + 3 breakdown steps); predicted ~0.15-0.2 s per fp32 step (6.6 TFLOP at ~50 TFLOP/s of
#              cuBLAS, plus ~23 ms of scalar attention) -> ~14 s of steps, ~3-5 s of host init per model  ~70 s
#   135m tf32  the same 7 models, ~52 ms per TF32 step (predicted) -> ~4 s of steps                    ~60 s
#   nsys fac   FlowHN fac at 135M, 1 warm-up + 2 timed steps under nsys, then its kernel summary        ~60 s
#   1b         FlowHN none and fac at batch 8 x 1024, 1 warm-up + 3 timed steps each, fp32; predicted
#              ~1.5-2 s per step (0.78 s with TF32) -> ~15 s of steps, up to 30-60 s of host init each  ~150 s
#   total                                                                                       ~535 s (8.9 min)
# The timeouts (stages below) are about twice each estimate; the total budget caps the worst case at 9 minutes.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; shift; fi
out=${1:-${OUT:-"$here/results"}}
budget=${FLOWHN_VALIDATE_BUDGET:-540}
flowhn="$here/flowhn"
bench135=(bench --device cuda --preset 135m --archs all --splits none,fac --steps 5 --warmup 2 --breakdown)

# name | timeout (s) | estimate (s) | what it runs (for --dry-run)
stages=(
    "env|60|15|nvidia-smi (clocks, power, driver), bundle commit, flowhn info --device cuda (cuBLAS file and version, PTX ISA)"
    "check|180|90|flowhn check --device cuda (its first row: streams.branch-priority, the SSM stream's priority from the driver)"
    "nccl|180|90|flowhn train --device cuda --arch transformer --preset tiny (plain, then --dp-backend nccl alone and under mpirun -np 1), losses compared"
    "bench-135m-fp32|150|70|flowhn ${bench135[*]}"
    "bench-135m-tf32|120|60|flowhn ${bench135[*]} --tf32"
    "nsys-fac|120|60|nsys profile flowhn bench --device cuda --preset 135m --archs flowhn --splits fac --steps 2 --warmup 1 (skipped without nsys)"
    "bench-1b|240|150|flowhn bench --device cuda --preset 1b --archs flowhn --splits none,fac --batch 8 --seq 1024 --steps 3 --warmup 1"
)
declare -A limits
for s in "${stages[@]}"; do IFS='|' read -r name limit _ _ <<<"$s"; limits[$name]=$limit; done

if [ "$dry_run" = 1 ]; then
    total=0 estimate=0
    printf '%-16s %8s %9s  %s\n' stage timeout estimate command
    for s in "${stages[@]}"; do
        IFS='|' read -r name limit guess what <<<"$s"
        printf '%-16s %7ss %8ss  %s\n' "$name" "$limit" "$guess" "$what"
        total=$((total + limit)) estimate=$((estimate + guess))
    done
    echo "output: $out; estimated ${estimate} s in all; sum of timeouts ${total} s, capped by the total budget of ${budget} s"
    exit 0
fi

mkdir -p "$out"
cd "$here" || exit 1
start=$(date +%s)
status=0
printf 'stage\tstatus\tseconds\ttimeout\n' > "$out/stages.tsv"

# run_stage NAME COMMAND...: output to NAME.txt (and the terminal), one line in stages.tsv as soon as it ends.
run_stage() {
    local name=$1 limit=${limits[$1]} left code began result
    shift
    left=$((budget - ($(date +%s) - start)))
    if [ "$left" -lt 20 ]; then
        printf '%s\tskipped (total budget spent)\t0\t%s\n' "$name" "$limit" >> "$out/stages.tsv"
        status=1
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (timeout ${limit} s) =="
    began=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$out/$name.txt"
    code=${PIPESTATUS[0]}
    case $code in
        0) result=ok ;;
        124 | 137) result="TIMEOUT after ${limit} s"; status=1 ;;
        *) result="FAILED (exit $code)"; status=1 ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$name" "$result" "$(($(date +%s) - began))" "$limit" >> "$out/stages.tsv"
    echo "== $name: $result =="
}

env_record() {
    echo "# flowhn GPU validation, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(hostname)"
    echo "bundle commit: $(cat "$here/COMMIT" 2>/dev/null || echo unknown)"
    echo "flowhn --version: $("$flowhn" --version)"
    echo
    nvidia-smi --query-gpu=name,driver_version,pstate,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.draw,power.limit,temperature.gpu,memory.total,ecc.mode.current \
        --format=csv || echo "nvidia-smi failed"
    echo
    nvidia-smi -q -d CLOCK,POWER,PERFORMANCE 2>/dev/null | head -n 80
    echo
    echo "cuBLAS files the loader knows:"
    (ldconfig -p 2>/dev/null | grep -i cublas) || echo "  none in the ld.so cache"
    echo "FLOWHN_CUBLAS=${FLOWHN_CUBLAS:-} CUDA_HOME=${CUDA_HOME:-}"
    echo
    "$flowhn" info --device cuda
}

nsys_trace() {
    if ! command -v nsys >/dev/null; then
        echo "nsys not found: no trace"
        return 0
    fi
    nsys --version
    nsys profile --trace=cuda,nvtx,osrt --sample=none --force-overwrite=true -o "$out/nsys-fac" \
        "$flowhn" bench --device cuda --preset 135m --archs flowhn --splits fac --steps 2 --warmup 1 --out "$out/nsys-fac-bench" || return
    # Per-kernel GPU time (kernel names are distinct: Kernel_AttentionForward, Kernel_SelectiveScanBackward, ...).
    nsys stats --report cuda_gpu_kern_sum --format csv --output "$out/nsys-fac" "$out/nsys-fac.nsys-rep" || true
}

# The NCCL gradient all-reduce on one GPU: the library loads, the communicator forms, every bucket is summed on
# the communication stream during the backward, and the losses equal the run without data parallelism.
nccl_check() {
    local common=(train --device cuda --arch transformer --preset tiny --data "$here/data/sample" --cache "$out/nccl/cache"
        --batch 4 --seq 64 --steps 5 --eval-batches 2 --log-every 1)
    local runs=(plain alone) code=0
    rm -rf "$out/nccl/plain" "$out/nccl/alone" "$out/nccl/mpirun"
    "$flowhn" "${common[@]}" --out "$out/nccl/plain" || return
    "$flowhn" "${common[@]}" --out "$out/nccl/alone" --dp-backend nccl --dp-bucket-mib 0.25 || return
    if command -v mpirun >/dev/null; then
        mpirun --allow-run-as-root -np 1 "$flowhn" "${common[@]}" --out "$out/nccl/mpirun" --dp-backend nccl --dp-bucket-mib 0.25 || return
        runs+=(mpirun)
    else
        echo "mpirun not found: no run under MPI"
    fi
    grep '"type":"train"' "$out/nccl/plain/metrics.jsonl" | grep -o '"loss":[^,]*' > "$out/nccl/plain-losses.txt"
    for run in "${runs[@]:1}"; do
        grep '"type":"train"' "$out/nccl/$run/metrics.jsonl" | grep -o '"loss":[^,]*' > "$out/nccl/$run-losses.txt"
        if [ -s "$out/nccl/plain-losses.txt" ] && cmp -s "$out/nccl/plain-losses.txt" "$out/nccl/$run-losses.txt"; then
            echo "nccl $run: losses identical to the plain run ($(wc -l < "$out/nccl/plain-losses.txt") steps)"
        else
            echo "nccl $run: LOSSES DIFFER from the plain run:"
            paste "$out/nccl/plain-losses.txt" "$out/nccl/$run-losses.txt"
            code=1
        fi
    done
    return $code
}

export -f env_record nsys_trace nccl_check
export here out flowhn
run_stage env bash -c env_record
run_stage check "$flowhn" check --device cuda
run_stage nccl bash -c nccl_check
run_stage bench-135m-fp32 "$flowhn" "${bench135[@]}" --out "$out/bench-135m-fp32"
run_stage bench-135m-tf32 "$flowhn" "${bench135[@]}" --tf32 --out "$out/bench-135m-tf32"
run_stage nsys-fac bash -c nsys_trace
run_stage bench-1b "$flowhn" bench --device cuda --preset 1b --archs flowhn --splits none,fac --batch 8 --seq 1024 \
    --steps 3 --warmup 1 --out "$out/bench-1b"

echo "total $(($(date +%s) - start)) s; stages:"
column -t -s $'\t' "$out/stages.tsv" 2>/dev/null || cat "$out/stages.tsv"
exit $status
