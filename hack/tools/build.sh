#!/usr/bin/env bash
# Build helm and crane from the Go modules pinned in hack/tools/go.mod, into a
# cache directory outside the repo (the same scheme as hack/controlplane/build.sh).
#
# helm lints, renders and installs charts/meshfit in the tests; crane
# (go-containerregistry) validates, inspects and pushes the image `make image`
# writes. Both come from the Go module proxy: no release-binary host is needed.
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

log() { printf '[tools] %s\n' "$*" >&2; }
die() { printf '[tools] ERROR: %s\n' "$*" >&2; exit 1; }

require_version() {
  awk -v mod="$1" '$0 !~ /=>/ && $1 == mod && $2 ~ /^v/ { print $2; exit }' "$here/go.mod"
}

helm_version="$(require_version helm.sh/helm/v3)"
crane_version="$(require_version github.com/google/go-containerregistry)"
client_go_version="$(require_version k8s.io/client-go)"
[[ -n "$helm_version" && -n "$crane_version" && -n "$client_go_version" ]] || die "cannot read pins from $here/go.mod"

cache_root="${MESHFIT_CACHE:-$HOME/.cache/meshfit}"
out_dir="$cache_root/tools-helm-$helm_version-crane-$crane_version"
bin_dir="$out_dir/bin"
stamp_file="$out_dir/stamp"
binaries=(helm crane)

label="helm $helm_version, crane $crane_version"
# shellcheck source=../lib/gobuild.sh
source "$here/../lib/gobuild.sh"
gobuild_prepare "$@"

# helm's own Makefile stamps its version and the Kubernetes version its
# client-go speaks (client-go v0.X.Y is Kubernetes 1.X), which `helm template`
# and `helm lint` use as the default .Capabilities.KubeVersion.
k8s_minor="${client_go_version#v0.}"; k8s_minor="${k8s_minor%%.*}"
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
declare -A pkg_of=(
  [helm]="helm.sh/helm/v3/cmd/helm"
  [crane]="github.com/google/go-containerregistry/cmd/crane"
)
declare -A ldflags_of=(
  [helm]="$helm_ldflags"
  [crane]="-s -w -X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$crane_version"
)

log "building helm $helm_version and crane $crane_version with $go_version into $bin_dir"
staging="$(mktemp -d "$out_dir/.staging.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

cd "$here"
total0=$SECONDS
for b in "${binaries[@]}"; do
  t0=$SECONDS
  "$GO" build -trimpath -ldflags "${ldflags_of[$b]}" -o "$staging/$b" "${pkg_of[$b]}" \
    || die "go build of $b failed"
  log "built $b in $((SECONDS - t0))s"
done

mkdir -p "$bin_dir"
for b in "${binaries[@]}"; do mv -f "$staging/$b" "$bin_dir/$b"; done
printf '%s\n' "$want_stamp" > "$stamp_file"
log "done in $((SECONDS - total0))s: $("$bin_dir/helm" version --short), crane $("$bin_dir/crane" version)"
printf '%s\n' "$bin_dir"
