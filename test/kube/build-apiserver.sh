#!/usr/bin/env bash
# Builds the real kube-apiserver from the wrapper module in test/kube/apiserver and caches
# it outside the clone, keyed by the module's files, so repeated CI runs do not rebuild
# (a build takes ~4 minutes on 2 cores). Prints the binary's path on the last line.
# test/support/kube-apiserver.ts computes the same path (keep the two in step).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
module="$here/apiserver"
hash="$(cat "$module/go.mod" "$module/go.sum" "$module/main.go" | sha256sum | cut -c1-16)"
cache="${TESSERA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera}"
binary="$cache/kube-apiserver-$hash"
if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi
go_bin="$(command -v go || echo /usr/local/go/bin/go)"
if [ ! -x "$go_bin" ]; then
  echo "build-apiserver: Go is needed to build kube-apiserver (looked on PATH and /usr/local/go/bin)" >&2
  exit 1
fi
mkdir -p "$cache"
tmp="$binary.tmp.$$"
trap 'rm -f "$tmp"' EXIT
echo "build-apiserver: building kube-apiserver into $binary (several minutes)" >&2
(cd "$module" && "$go_bin" build -trimpath -ldflags='-s -w' -o "$tmp" .)
mv "$tmp" "$binary"   # atomic: a half-written binary is never taken for a cached one
echo "$binary"
