#!/usr/bin/env bash
# Fails when the committed code of the Python and TypeScript clients differs
# from what buf generates from proto/ now (see buf.gen.python.yaml and
# buf.gen.ts.yaml). Generates into a temporary directory: the work tree is
# never touched. Without Debian's protoc and grpc_python_plugin, or without
# `npm ci` in clients/typescript, it says what to install and skips, unless
# EVENTSVC_REQUIRE_CLIENT_TESTS=1 (as in CI), when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
[ -x /usr/bin/protoc ] || missing+=("apt-get install protobuf-compiler")
[ -x /usr/bin/grpc_python_plugin ] || missing+=("apt-get install protobuf-compiler-grpc")
[ -x clients/typescript/node_modules/.bin/protoc-gen-es ] || missing+=("npm ci --prefix clients/typescript")
if [ ${#missing[@]} -gt 0 ]; then
  msg=$(printf '%s; ' "${missing[@]}")
  if [ "${EVENTSVC_REQUIRE_CLIENT_TESTS:-}" = 1 ]; then
    echo "clients' generated code not checked: ${msg%; }" >&2
    exit 1
  fi
  echo "clients' generated code not checked (skipped): ${msg%; }"
  exit 0
fi
# The Makefile passes the buf it built into bin/; by hand, go tool builds it.
buf=${BUF:-go tool -modfile=buf.go.mod buf}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$buf generate --template buf.gen.python.yaml -o "$tmp"
$buf generate --template buf.gen.ts.yaml -o "$tmp"
stale=0
if ! diff -r -x __init__.py clients/python/sociocs "$tmp/clients/python/sociocs" >"$tmp/diff.txt"; then
  stale=1
fi
if ! diff -r clients/typescript/src/gen "$tmp/clients/typescript/src/gen" >>"$tmp/diff.txt"; then
  stale=1
fi
if [ $stale = 1 ]; then
  echo "clients' generated code is stale: run 'make generate-clients' and commit the result" >&2
  head -n 40 "$tmp/diff.txt" >&2
  exit 1
fi
echo "clients' generated code is up to date"
