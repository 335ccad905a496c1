# shellcheck shell=bash
# What hack/controlplane, hack/kwok and hack/tools share: build Go binaries from a
# module pinned in go.mod into a cache directory outside the repo, once.
#
# A script sets, then sources this file and calls `gobuild_prepare "$@"`:
#   here       the module directory (go.mod, go.sum, build.sh)
#   out_dir    the cache directory for this pin set (bin/ and the stamp go there)
#   binaries   the names that must exist in $out_dir/bin
#   log, die   its own logging functions (with its prefix)
#   label      what "up to date: …" names
# gobuild_prepare handles --print-bindir and --force, prints the bin dir and exits
# when the stamp matches (or another process has just built it, under flock), and
# otherwise returns with the build environment exported and $bin_dir created.
#
# The stamp hashes everything that decides the output: go.mod, go.sum, the script,
# this file, and the Go version (another toolchain builds other binaries).

gobuild_lib="${BASH_SOURCE[0]}"

gobuild_require_version() {
  awk -v mod="$1" '$0 !~ /=>/ && $1 == mod && $2 ~ /^v/ { print $2; exit }' "$here/go.mod"
}

gobuild_up_to_date() {
  [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$want_stamp" ]] || return 1
  local b
  for b in "${binaries[@]}"; do [[ -x "$bin_dir/$b" ]] || return 1; done
}

gobuild_prepare() {
  bin_dir="$out_dir/bin"
  stamp_file="$out_dir/stamp"
  force=0
  case "${1:-}" in
    --print-bindir) printf '%s\n' "$bin_dir"; exit 0 ;;
    --force) force=1 ;;
    "") ;;
    *) die "unknown argument: $1 (try --print-bindir or --force)" ;;
  esac
  command -v "$GO" >/dev/null 2>&1 || die "go not found on PATH; install Go >= $(awk '$1=="go"{print $2; exit}' "$here/go.mod") (https://go.dev/doc/install or 'apt-get install golang-go' if new enough)"
  go_version="$(GOTOOLCHAIN=local GOFLAGS= "$GO" env GOVERSION)"
  want_stamp="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" "$gobuild_lib" <(printf '%s\n' "$go_version") | sha256sum | cut -d' ' -f1)"
  if (( ! force )) && gobuild_up_to_date; then
    log "up to date: $label ($go_version)"
    printf '%s\n' "$bin_dir"
    exit 0
  fi
  mkdir -p "$out_dir"
  # One build at a time per cache dir: a test fixture and a make target may race
  # on a fresh machine. flock is optional (util-linux); without it we build.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$out_dir/.lock"
    if ! flock -n 9; then
      log "another build holds $out_dir/.lock; waiting for it"
      flock 9
    fi
    if (( ! force )) && gobuild_up_to_date; then
      log "built by the other process: $bin_dir"
      printf '%s\n' "$bin_dir"
      exit 0
    fi
  fi
  # go.mod names its go version: with GOTOOLCHAIN=local an older go fails with a
  # clear message rather than silently fetching a toolchain.
  export GOTOOLCHAIN=local CGO_ENABLED=0
  export GOFLAGS="-mod=readonly -buildvcs=false"
}
