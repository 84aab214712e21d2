#!/usr/bin/env bash
# Fuzzes every fuzz target of the repository in turn, FUZZTIME each (default
# 60s). Targets are found in the test files, so a new one is fuzzed without
# being listed anywhere; each runs alone (go test -fuzz takes one target, so
# the pattern is anchored: -fuzz FuzzConvert would also match
# FuzzConvertMatchesReference and be refused).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-60s}
n=0
while IFS= read -r file; do
  for target in $(sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(.*\*testing\.F\).*/\1/p' "$file"); do
    echo "fuzz: $target in ./$(dirname "$file") for $fuzztime"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "./$(dirname "$file")"
    n=$((n + 1))
  done
done < <(git ls-files --cached --others --exclude-standard '*_test.go')
if [ "$n" -eq 0 ]; then
  echo "fuzz: no fuzz target found" >&2
  exit 1
fi
echo "fuzz: $n targets fuzzed for $fuzztime each"
