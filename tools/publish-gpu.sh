#!/usr/bin/env bash
# Builds a self-contained linux-x64 bundle of the flowhn CLI for GPU machines that have the NVIDIA driver but
# no .NET, and compresses it: dist/flowhn-linux-x64.tar.xz (must stay under 60 MB).
# Usage: tools/publish-gpu.sh [output-dir]
# On the GPU machine: tar -xJf flowhn-linux-x64.tar.xz && flowhn/gpu-validate.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$root/dist"}
rm -rf "$out/flowhn"
mkdir -p "$out"
dotnet publish "$root/src/FlowHN.Cli/FlowHN.Cli.csproj" -c Release -r linux-x64 --self-contained true \
    -p:DebugType=none -p:GenerateDocumentationFile=false -o "$out/flowhn" --nologo -v quiet
cp "$root/tools/gpu-validate.sh" "$out/flowhn/"
chmod +x "$out/flowhn/gpu-validate.sh" "$out/flowhn/flowhn"
tar -C "$out" -cf - flowhn | xz -T0 -6 > "$out/flowhn-linux-x64.tar.xz"
size=$(stat -c %s "$out/flowhn-linux-x64.tar.xz")
limit=$((60 * 1024 * 1024))
echo "bundle: $out/flowhn-linux-x64.tar.xz ($((size / 1024 / 1024)) MiB)"
if [ "$size" -ge "$limit" ]; then
    echo "error: the bundle is over 60 MB" >&2
    exit 1
fi
