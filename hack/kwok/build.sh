#!/usr/bin/env bash
# Build KWOK's `kwok` controller (the fake kubelet the end-to-end tests run beside
# the local control plane) from the Go module pinned in hack/kwok/go.mod, into a
# cache directory outside the repo.
#
# A module of its own rather than a line in hack/controlplane/go.mod: KWOK pins
# its own k8s.io client libraries, and adding it there would move the control
# plane's stamp and rebuild kube-apiserver for nothing.
#
# Usage:
#   build.sh                 build if the pin changed, then print the bin dir
#   build.sh --print-bindir  print the bin dir only (no go needed, no build)
#   build.sh --force         rebuild even if the stamp matches
#
# Environment:
#   MESHFIT_CACHE  cache root (default: $HOME/.cache/meshfit)
#   GO             the go command (default: go)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO="${GO:-go}"

log() { printf '[kwok] %s\n' "$*" >&2; }
die() { printf '[kwok] ERROR: %s\n' "$*" >&2; exit 1; }

# The version go.mod's require line pins for KWOK, parsed with awk (not
# `go list`) so --print-bindir works without go.
kwok_version="$(awk '$0 !~ /=>/ && ($1 == "sigs.k8s.io/kwok" || ($1 == "require" && $2 == "sigs.k8s.io/kwok")) { print ($1 == "require" ? $3 : $2); exit }' "$here/go.mod")"
[[ "$kwok_version" == v* ]] || die "cannot read the sigs.k8s.io/kwok pin from $here/go.mod"

cache_root="${MESHFIT_CACHE:-$HOME/.cache/meshfit}"
out_dir="$cache_root/kwok-$kwok_version"
bin_dir="$out_dir/bin"
stamp_file="$out_dir/stamp"
binaries=(kwok)

label="kwok $kwok_version"
# shellcheck source=../lib/gobuild.sh
source "$here/../lib/gobuild.sh"
gobuild_prepare "$@"

# The module's own sources already carry its version (pkg/consts.Version),
# which `kwok --version` prints; nothing to stamp in.
ldflags="-s -w"

log "building kwok $kwok_version with $go_version into $bin_dir"
log "a cold build takes about 2.5 minutes on 2 cores (downloads ~320 MB of modules); later runs reuse the Go build cache"
staging="$(mktemp -d "$out_dir/.staging.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

cd "$here"
t0=$SECONDS
"$GO" build -trimpath -ldflags "$ldflags" -o "$staging/kwok" sigs.k8s.io/kwok/cmd/kwok \
  || die "go build of kwok failed"

mkdir -p "$bin_dir"
for b in "${binaries[@]}"; do mv -f "$staging/$b" "$bin_dir/$b"; done
printf '%s\n' "$want_stamp" > "$stamp_file"
log "done in $((SECONDS - t0))s: $("$bin_dir/kwok" --version 2>&1 | head -1)"
log "binaries are in $bin_dir"
printf '%s\n' "$bin_dir"
