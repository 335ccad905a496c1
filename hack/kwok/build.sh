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

force=0
case "${1:-}" in
  --print-bindir) printf '%s\n' "$bin_dir"; exit 0 ;;
  --force) force=1 ;;
  "") ;;
  *) die "unknown argument: $1 (try --print-bindir or --force)" ;;
esac

# The stamp: the pins, this script (flags, ldflags) and the Go version.
command -v "$GO" >/dev/null 2>&1 || die "go not found on PATH; install Go >= $(awk '$1=="go"{print $2; exit}' "$here/go.mod") (https://go.dev/doc/install)"
go_version="$(GOTOOLCHAIN=local GOFLAGS= "$GO" env GOVERSION)"
want_stamp="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" <(printf '%s\n' "$go_version") | sha256sum | cut -d' ' -f1)"

up_to_date() {
  [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$want_stamp" ]] || return 1
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin_dir/$b" ]] || return 1; done
}

if (( ! force )) && up_to_date; then
  log "up to date: kwok $kwok_version ($go_version)"
  printf '%s\n' "$bin_dir"
  exit 0
fi

mkdir -p "$out_dir"
# One build at a time per cache dir (a test fixture and `make controlplane` may
# race on a fresh machine); flock is optional.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$out_dir/.lock"
  if ! flock -n 9; then
    log "another build holds $out_dir/.lock; waiting for it"
    flock 9
  fi
  if (( ! force )) && up_to_date; then
    log "built by the other process: $bin_dir"
    printf '%s\n' "$bin_dir"
    exit 0
  fi
fi

export GOTOOLCHAIN=local CGO_ENABLED=0
export GOFLAGS="-mod=readonly"

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
