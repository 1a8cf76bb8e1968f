#!/usr/bin/env bash
# Rebuilds data/sample, the small committed corpus, from the full corpus with the same cleaning:
# the two default validation books plus three training books (about 2 MB).
# Usage: tools/make-sample.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sample="$repo/data/sample"
full="$(mktemp -d)"
trap 'rm -rf "$full"' EXIT

books=(austen-persuasion chesterton-thursday austen-sense chesterton-brown carroll-alice)

"$repo/tools/fetch-corpus.sh" "$full"
mkdir -p "$sample"
rm -f "$sample"/*.txt
for book in "${books[@]}"; do
  cp "$full/$book.txt" "$sample/"
done
echo "${#books[@]} books, $(du -ch "$sample"/*.txt | tail -1 | cut -f1) in $sample"
