#!/usr/bin/env bash
# Build etcd, kube-apiserver, kube-scheduler and kubectl from the upstream Go modules
# pinned in hack/controlplane/go.mod, into a cache directory outside the repo.
#
# Why build instead of download: this workplace (and CI) reaches the Go module
# proxy but no release-binary host, and building from pinned modules makes the
# control plane exactly as reproducible as go.sum.
#
# Usage:
#   build.sh                 build if the pins changed, then print the bin dir
#   build.sh --print-bindir  print the bin dir only (no go needed, no build)
#   build.sh --force         rebuild even if the stamp matches
#
# Environment:
#   MESHFIT_CACHE  cache root (default: $HOME/.cache/meshfit)
#   GO             the go command (default: go)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO="${GO:-go}"

log() { printf '[controlplane] %s\n' "$*" >&2; }
die() { printf '[controlplane] ERROR: %s\n' "$*" >&2; exit 1; }

# require_version MODULE: the version go.mod's require block pins for MODULE.
# Parsed with awk (not `go list`) so --print-bindir works without go; replace
# lines contain "=>" and are skipped.
require_version() {
  awk -v mod="$1" '$0 !~ /=>/ && $1 == mod && $2 ~ /^v/ { print $2; exit }' "$here/go.mod"
}

k8s_version="$(require_version k8s.io/kubernetes)"
etcd_version="$(require_version go.etcd.io/etcd/server/v3)"
[[ -n "$k8s_version" && -n "$etcd_version" ]] || die "cannot read pins from $here/go.mod"

cache_root="${MESHFIT_CACHE:-$HOME/.cache/meshfit}"
out_dir="$cache_root/k8s-$k8s_version-etcd-$etcd_version"
bin_dir="$out_dir/bin"
stamp_file="$out_dir/stamp"
binaries=(etcd kube-apiserver kube-scheduler kubectl)

label="kubernetes $k8s_version, etcd $etcd_version"
# shellcheck source=../lib/gobuild.sh
source "$here/../lib/gobuild.sh"
gobuild_prepare "$@"

minor="${k8s_version#v}"; minor="${minor#*.}"; minor="${minor%%.*}"
major="${k8s_version#v}"; major="${major%%.*}"
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

declare -A pkg_of=(
  [etcd]="go.etcd.io/etcd/server/v3"
  [kube-apiserver]="k8s.io/kubernetes/cmd/kube-apiserver"
  [kube-scheduler]="k8s.io/kubernetes/cmd/kube-scheduler"
  [kubectl]="k8s.io/kubernetes/cmd/kubectl"
)
declare -A ldflags_of=(
  [etcd]="-s -w"
  [kube-apiserver]="$kube_ldflags"
  [kube-scheduler]="$kube_ldflags"
  [kubectl]="$kube_ldflags"
)

log "building kubernetes $k8s_version and etcd $etcd_version with $go_version into $bin_dir"
log "a cold build takes about 4 minutes on 2 fast cores (longer on slower ones); later runs reuse the Go build cache"
staging="$(mktemp -d "$out_dir/.staging.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

cd "$here"
total0=$SECONDS
for b in "${binaries[@]}"; do
  log "building $b (${pkg_of[$b]})"
  t0=$SECONDS
  "$GO" build -trimpath -ldflags "${ldflags_of[$b]}" -o "$staging/$b" "${pkg_of[$b]}" \
    || die "go build of $b failed"
  log "built $b in $((SECONDS - t0))s"
done

mkdir -p "$bin_dir"
for b in "${binaries[@]}"; do mv -f "$staging/$b" "$bin_dir/$b"; done
printf '%s\n' "$want_stamp" > "$stamp_file"
log "done in $((SECONDS - total0))s: $("$bin_dir/kube-apiserver" --version), etcd $("$bin_dir/etcd" --version | awk '/etcd Version/{print $3}')"
log "binaries are in $bin_dir"
printf '%s\n' "$bin_dir"
