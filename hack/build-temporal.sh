#!/usr/bin/env bash
# Builds the Temporal server (go.temporal.io/server/cmd/server, with its pure-Go SQLite store)
# from the Go module proxy into ${PWEZA_K8S_CACHE:-$HOME/.cache/pweza}/temporal-<version>/,
# for the Temporal peer of `make bench` (benchmarks/comparing/temporal.py writes its config).
# Only `make bench` runs it; `make test` never does.
#
# Why the server and not the `temporal` CLI (whose `server start-dev` is the usual dev server):
# `go install github.com/temporalio/cli/cmd/temporal` fails from the module proxy, since the
# CLI's go.mod replaces `github.com/temporalio/cli/cliext` with a ./cliext directory the
# proxy's zip does not hold. Server v1.32.2 needs go >= 1.26.10; v1.32.1 builds with 1.26.8.
#
# Re-running is cheap: nothing is built when the binary of this version is there. The last
# line on stdout is the binary's path; progress goes to stderr. Cold: ~27 min on 2
# busy cores; it runs niced on one core (GOMAXPROCS=1) unless told otherwise.
set -euo pipefail

VERSION="${TEMPORAL_SERVER_VERSION:-v1.32.1}"
DEST="${PWEZA_K8S_CACHE:-$HOME/.cache/pweza}/temporal-${VERSION}"
BINARY="${DEST}/temporal-server"

log() { printf '[build-temporal %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [[ -x "${BINARY}" ]]; then
  echo "${BINARY}"
  exit 0
fi
command -v go >/dev/null || { log "ERROR: go is not installed"; exit 1; }
mkdir -p "${DEST}"
exec 9>"${DEST}/.build.lock"
flock 9
if [[ -x "${BINARY}" ]]; then  # another build finished while this one waited
  echo "${BINARY}"
  exit 0
fi

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pweza-build-temporal.XXXXXX")"
trap 'rm -rf "${WORK_DIR}"' EXIT
cd "${WORK_DIR}"  # away from any go.mod of the caller's directory
log "building go.temporal.io/server/cmd/server@${VERSION} (GOMAXPROCS=${GOMAXPROCS:-1}, nice 15)"
START_SECONDS=${SECONDS}
GOMAXPROCS="${GOMAXPROCS:-1}" GOFLAGS=-mod=mod GOBIN="${WORK_DIR}/bin" \
  nice -n 15 go install "go.temporal.io/server/cmd/server@${VERSION}"
install -m 0755 "${WORK_DIR}/bin/server" "${BINARY}.tmp"
mv -f "${BINARY}.tmp" "${BINARY}"
log "built ${BINARY} in $((SECONDS - START_SECONDS))s"
echo "${BINARY}"
