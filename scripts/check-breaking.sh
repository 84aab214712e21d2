#!/usr/bin/env bash
# buf breaking against the last commit (catches an uncommitted break) and the
# one before it (catches a break that was committed). A ref that does not exist
# or predates the schema (a shallow clone, the first commit) is skipped, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Makefile passes the buf it built into bin/; by hand, go tool builds it.
buf=${BUF:-go tool -modfile=buf.go.mod buf}
for ref in HEAD HEAD~1; do
  if ! git rev-parse --verify --quiet "$ref^{commit}" >/dev/null; then
    echo "buf breaking: no $ref, skipped"
    continue
  fi
  if ! git cat-file -e "$ref:buf.yaml" 2>/dev/null; then
    echo "buf breaking: $ref has no schema yet, skipped"
    continue
  fi
  $buf breaking --against ".git#ref=$ref"
  echo "buf breaking: no break against $ref"
done
