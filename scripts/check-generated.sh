#!/usr/bin/env bash
# Fails when the committed gen/ differs from what buf generates from proto/ now.
# Generates into a temporary directory so that the work tree is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Makefile passes the buf it built into bin/; by hand, go tool builds it.
buf=${BUF:-go tool -modfile=buf.go.mod buf}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$buf generate -o "$tmp"
if ! diff -r gen "$tmp/gen" >"$tmp/diff.txt"; then
  echo "gen/ is stale: run 'make generate' and commit the result" >&2
  head -n 40 "$tmp/diff.txt" >&2
  exit 1
fi
echo "gen/ is up to date"
