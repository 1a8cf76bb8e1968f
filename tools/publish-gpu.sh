#!/usr/bin/env bash
# Builds a self-contained linux-x64 bundle of the flowhn CLI for GPU machines that have the NVIDIA driver but
# no .NET, and compresses it: dist/flowhn-linux-x64.tar.xz (must stay under 25 MB). The bundle is trimmed (see
# src/FlowHN.Cli/FlowHN.Cli.csproj: the framework's unused code goes, our and ILGPU's assemblies stay whole), has
# no satellite resource folders, carries data/sample and the commit it was built from (COMMIT, `flowhn --version`).
# Usage: tools/publish-gpu.sh [output-dir]
# On the GPU machine: tar -xJf flowhn-linux-x64.tar.xz && flowhn/gpu-validate.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$root/dist"}
rm -rf "$out/flowhn"
mkdir -p "$out"

commit=unknown
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    commit=$(git -C "$root" rev-parse HEAD)
    if [ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]; then commit="$commit-dirty"; fi
fi

dotnet publish "$root/src/FlowHN.Cli/FlowHN.Cli.csproj" -c Release -r linux-x64 --self-contained true \
    -p:GpuBundle=true -p:DebugType=none -p:GenerateDocumentationFile=false -p:SourceRevisionId="$commit" \
    -o "$out/flowhn" --nologo -v quiet
cp "$root/tools/gpu-validate.sh" "$out/flowhn/"
mkdir -p "$out/flowhn/data"
cp -r "$root/data/sample" "$root/data/README.md" "$out/flowhn/data/"
echo "$commit" > "$out/flowhn/COMMIT"
chmod +x "$out/flowhn/gpu-validate.sh" "$out/flowhn/flowhn"

version=$("$out/flowhn/flowhn" --version)
case "$version" in
    *"+$commit"*) ;;
    *) echo "error: the bundle reports version '$version', not commit $commit" >&2; exit 1 ;;
esac

tar -C "$out" -cf - flowhn | xz -T0 -6 > "$out/flowhn-linux-x64.tar.xz"
size=$(stat -c %s "$out/flowhn-linux-x64.tar.xz")
unpacked=$(du -sb "$out/flowhn" | cut -f1)
limit=$((25 * 1000 * 1000))
echo "bundle: $out/flowhn-linux-x64.tar.xz ($(awk "BEGIN { printf \"%.1f\", $size / 1e6 }") MB, $(awk "BEGIN { printf \"%.0f\", $unpacked / 1e6 }") MB unpacked), flowhn $version"
if [ "$size" -ge "$limit" ]; then
    echo "error: the bundle is over 25 MB" >&2
    exit 1
fi
