#!/usr/bin/env bash
# Builds the Kubernetes control-plane test kit used by pweza.testing.controlplane:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok and helm,
# plus the node add-ons used by pweza.testing.addons (coredns, metrics-server,
# kube-router), all from source fetched through the Go module proxy (no release
# downloads needed).
#
# Binaries land outside the repo in ${PWEZA_K8S_CACHE:-$HOME/.cache/pweza}/k8s-<version>/bin.
# Re-running is cheap: a binary is rebuilt only when it is missing or was built from other
# pinned versions. The last line on stdout is the bin dir; progress goes to stderr.
#
# Cold build on 2 cores takes tens of minutes; run it niced if the machine is shared:
#   nice -n 15 hack/build-k8s.sh
set -euo pipefail

K8S_VERSION="v1.37.2"
# The etcd minor that k8s.io/kubernetes v1.37.x pins in build/dependencies.yaml.
ETCD_VERSION="v3.7.3"
KWOK_VERSION="v0.8.0"
HELM_VERSION="v3.22.0"
# Node add-ons (pweza.testing.addons). CoreDNS v1.15.0 and metrics-server v0.9.0 are
# built against client-go v0.37 / v0.36. kube-router v2.1.0 is the only kube-router/v2
# release the module proxy serves here; it keeps its own client-go v0.29 (it only
# watches GA core/networking APIs, which a 1.37 apiserver still serves).
COREDNS_VERSION="v1.15.0"
METRICS_SERVER_VERSION="v0.9.0"
KUBE_ROUTER_VERSION="v2.1.0"
# The CoreDNS plugins compiled in, in the order of CoreDNS's plugin.cfg: that order is
# the order plugins handle a query in, so it must be kept. Part of the stamp, so
# changing the list rebuilds coredns.
COREDNS_PLUGINS=(reload bind ready health errors log loadbalance cache template kubernetes loop whoami)

CACHE_ROOT="${PWEZA_K8S_CACHE:-$HOME/.cache/pweza}"
KIT_DIR="${CACHE_ROOT}/k8s-${K8S_VERSION}"
BIN_DIR="${KIT_DIR}/bin"
STAMP_DIR="${KIT_DIR}/stamps"

K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
ADDON_BINARIES=(coredns metrics-server kube-router)
ALL_BINARIES=("${K8S_BINARIES[@]}" etcd kwok helm "${ADDON_BINARIES[@]}")

log() { printf '[build-k8s %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

expected_stamp() {
  case "$1" in
    etcd) echo "etcd ${ETCD_VERSION}" ;;
    kwok) echo "kwok ${KWOK_VERSION}" ;;
    helm) echo "helm ${HELM_VERSION}" ;;
    coredns) echo "coredns ${COREDNS_VERSION} plugins ${COREDNS_PLUGINS[*]}" ;;
    metrics-server) echo "metrics-server ${METRICS_SERVER_VERSION}" ;;
    kube-router) echo "kube-router ${KUBE_ROUTER_VERSION}" ;;
    *) echo "kubernetes ${K8S_VERSION}" ;;
  esac
}

is_current() {
  [[ -x "${BIN_DIR}/$1" && -f "${STAMP_DIR}/$1" ]] &&
    [[ "$(cat "${STAMP_DIR}/$1")" == "$(expected_stamp "$1")" ]]
}

missing_binaries() {
  local b
  for b in "$@"; do
    is_current "$b" || echo "$b"
  done
}

# Fast path before taking the lock or touching the network.
if [[ -z "$(missing_binaries "${ALL_BINARIES[@]}")" ]]; then
  log "all binaries up to date in ${BIN_DIR}"
  echo "${BIN_DIR}"
  exit 0
fi

command -v go >/dev/null || die "go is not installed (needs Go >= 1.26)"
mkdir -p "${BIN_DIR}" "${STAMP_DIR}"

if command -v flock >/dev/null; then
  exec 9>"${KIT_DIR}/.build.lock"
  flock 9
fi

START_SECONDS=${SECONDS}
WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pweza-build-k8s.XXXXXX")"
trap 'rm -rf "${WORK_DIR}"' EXIT
# Keep go commands away from any go.mod in the caller's directory.
cd "${WORK_DIR}"

export CGO_ENABLED=0
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
LOCAL_GO="$(go env GOVERSION)"
LOCAL_GO="${LOCAL_GO#go}"

# `go mod download -json` prints one field per line; avoids needing jq.
download_field() {
  local modver="$1" field="$2"
  go mod download -json "${modver}" |
    sed -n "s/^[[:space:]]*\"${field}\": \"\(.*\)\",\{0,1\}$/\1/p"
}

go_line_of() {
  awk '$1 == "go" { print $2; exit }' "$1"
}

version_lt() {
  [[ "$1" != "$2" && "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$1" ]]
}

# GOTOOLCHAIN may be pinned to `local`; when a module needs a newer Go than installed,
# fetch that toolchain from the module proxy instead of failing.
ensure_go_for() {
  local needed="$1"
  [[ "${needed}" =~ ^[0-9]+\.[0-9]+$ ]] && needed="${needed}.0"
  local current="${LOCAL_GO}"
  if [[ "${GOTOOLCHAIN:-}" =~ ^go([0-9.]+)$ ]]; then
    current="${BASH_REMATCH[1]}"
  fi
  if version_lt "${current}" "${needed}"; then
    log "module needs go ${needed} (have ${current}); using GOTOOLCHAIN=go${needed}"
    export GOTOOLCHAIN="go${needed}"
  fi
}

install_binary() {
  local name="$1" src="$2"
  install -m 0755 "${src}" "${BIN_DIR}/${name}.tmp"
  mv -f "${BIN_DIR}/${name}.tmp" "${BIN_DIR}/${name}"
  expected_stamp "${name}" >"${STAMP_DIR}/${name}"
  log "installed ${name} ($(du -h "${BIN_DIR}/${name}" | cut -f1))"
}

build_kubernetes() {
  local -a wanted
  mapfile -t wanted < <(missing_binaries "${K8S_BINARIES[@]}")
  [[ ${#wanted[@]} -gt 0 ]] || return 0
  log "kubernetes ${K8S_VERSION}: building ${wanted[*]}"

  local gomod
  gomod="$(download_field "k8s.io/kubernetes@${K8S_VERSION}" GoMod)"
  [[ -f "${gomod}" ]] || die "could not download k8s.io/kubernetes@${K8S_VERSION}"

  local ver="${K8S_VERSION#v}" major minor staging_version
  IFS=. read -r major minor _ <<<"${ver}"
  staging_version="v0.${ver#*.}"

  # k8s.io/kubernetes replaces its staging modules with ./staging/src/..., which is not in
  # the module zip; point each one at its published release instead.
  local -a staged
  mapfile -t staged < <(awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "${gomod}")
  [[ ${#staged[@]} -gt 0 ]] || die "no staging replacements found in ${gomod}"

  local dir="${WORK_DIR}/kubernetes" go_line
  mkdir -p "${dir}"
  go_line="$(go_line_of "${gomod}")"
  ensure_go_for "${go_line}"
  {
    echo "module pweza.local/build-kubernetes"
    echo
    echo "go ${go_line}"
    # GODEBUG defaults come from the main module, so carry over what kubernetes sets.
    grep -E '^godebug[[:space:]]' "${gomod}" || true
    echo
    echo "require k8s.io/kubernetes ${K8S_VERSION}"
    echo
    echo "replace ("
    local m
    for m in "${staged[@]}"; do
      # Sample modules are replaced but never required, and some are not published.
      if grep -qE "^[[:space:]]+${m//./\\.}[[:space:]]+v0\.0\.0" "${gomod}"; then
        echo "	${m} => ${m} ${staging_version}"
      else
        log "  skipping ${m}: not required by k8s.io/kubernetes"
      fi
    done
    echo ")"
  } >"${dir}/go.mod"

  local -a ldflags=(-s -w)
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=(
      "-X ${pkg}.gitVersion=${K8S_VERSION}"
      "-X ${pkg}.gitMajor=${major}"
      "-X ${pkg}.gitMinor=${minor}"
      "-X ${pkg}.gitTreeState=clean"
      "-X ${pkg}.buildDate=${BUILD_DATE}"
    )
  done

  local -a pkgs=()
  local b
  for b in "${wanted[@]}"; do
    pkgs+=("k8s.io/kubernetes/cmd/${b}")
  done

  mkdir -p "${dir}/out"
  log "  compiling ${pkgs[*]} (a cold module cache first fetches a few hundred modules)"
  (cd "${dir}" && go build -mod=mod -trimpath -ldflags "${ldflags[*]}" -o "${dir}/out/" "${pkgs[@]}")
  for b in "${wanted[@]}"; do
    install_binary "${b}" "${dir}/out/${b}"
  done
}

build_etcd() {
  is_current etcd && return 0
  log "etcd ${ETCD_VERSION}: building"
  local gomod dir="${WORK_DIR}/etcd" go_line
  gomod="$(download_field "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" GoMod)"
  [[ -f "${gomod}" ]] || die "could not download go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
  go_line="$(go_line_of "${gomod}")"
  ensure_go_for "${go_line}"
  mkdir -p "${dir}/out"
  # server/v3 replaces its sibling modules with ../ paths; as a dependency those replaces
  # are ignored and the published siblings of the same release are used.
  cat >"${dir}/go.mod" <<EOF
module pweza.local/build-etcd

go ${go_line}

require go.etcd.io/etcd/server/v3 ${ETCD_VERSION}
EOF
  (cd "${dir}" && go build -mod=mod -trimpath \
    -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}" \
    -o "${dir}/out/etcd" go.etcd.io/etcd/server/v3)
  install_binary etcd "${dir}/out/etcd"
}

build_kwok() {
  is_current kwok && return 0
  log "kwok ${KWOK_VERSION}: building"
  local gomod dir="${WORK_DIR}/kwok"
  gomod="$(download_field "sigs.k8s.io/kwok@${KWOK_VERSION}" GoMod)"
  ensure_go_for "$(go_line_of "${gomod}")"
  mkdir -p "${dir}"
  GOBIN="${dir}" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
    "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  install_binary kwok "${dir}/kwok"
}

build_helm() {
  is_current helm && return 0
  log "helm ${HELM_VERSION}: building"
  local gomod dir="${WORK_DIR}/helm" client_go kmajor kminor
  gomod="$(download_field "helm.sh/helm/v3@${HELM_VERSION}" GoMod)"
  ensure_go_for "$(go_line_of "${gomod}")"
  # Same derivation as helm's Makefile: client-go v0.X.Y belongs to Kubernetes v1.X.Y.
  client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "${gomod}")"
  [[ -n "${client_go}" ]] || die "k8s.io/client-go not found in helm's go.mod"
  IFS=. read -r _ kminor _ <<<"${client_go#v}"
  kmajor=1
  local kube_version="v1.${client_go#v0.}"
  local -a ldflags=(
    -s -w
    "-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
    "-X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${kmajor}"
    "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${kminor}"
    "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${kmajor}"
    "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${kminor}"
  )
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=(
      "-X ${pkg}.gitVersion=${kube_version}"
      "-X ${pkg}.gitMajor=${kmajor}"
      "-X ${pkg}.gitMinor=${kminor}"
    )
  done
  mkdir -p "${dir}"
  GOBIN="${dir}" go install -trimpath -ldflags "${ldflags[*]}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  install_binary helm "${dir}/helm"
}

# CoreDNS's own main imports core/plugin, which links every in-tree plugin (route53,
# azure, clouddns, etcd, geoip, dnstap, grpc...) and their cloud SDKs. The test kit
# needs a handful, so a main of our own links only those: far less to fetch and
# compile on a cold cache and a much smaller binary. The Corefile may only use
# directives listed in COREDNS_PLUGINS.
build_coredns() {
  is_current coredns && return 0
  log "coredns ${COREDNS_VERSION}: building with plugins ${COREDNS_PLUGINS[*]}"
  local gomod dir="${WORK_DIR}/coredns" go_line p
  gomod="$(download_field "github.com/coredns/coredns@${COREDNS_VERSION}" GoMod)"
  [[ -f "${gomod}" ]] || die "could not download github.com/coredns/coredns@${COREDNS_VERSION}"
  go_line="$(go_line_of "${gomod}")"
  ensure_go_for "${go_line}"
  mkdir -p "${dir}/out"
  cat >"${dir}/go.mod" <<EOF
module pweza.local/build-coredns

go ${go_line}

require github.com/coredns/coredns ${COREDNS_VERSION}
EOF
  {
    echo "// Generated by hack/build-k8s.sh: CoreDNS with only the plugins the test kit uses."
    echo "package main"
    echo
    echo "import ("
    echo '	"github.com/coredns/coredns/core/dnsserver"'
    echo '	"github.com/coredns/coredns/coremain"'
    echo
    for p in "${COREDNS_PLUGINS[@]}"; do
      echo "	_ \"github.com/coredns/coredns/plugin/${p}\""
    done
    echo ")"
    echo
    echo "func main() {"
    echo "	// Replaces the generated list of every plugin; this order is the run order."
    echo "	dnsserver.Directives = []string{"
    for p in "${COREDNS_PLUGINS[@]}"; do
      echo "		\"${p}\","
    done
    echo "	}"
    echo "	coremain.Run()"
    echo "}"
  } >"${dir}/main.go"
  # grpcnotrace is the tag CoreDNS's Makefile builds with (drops grpc's x/net/trace).
  (cd "${dir}" && go build -mod=mod -trimpath -tags grpcnotrace \
    -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=${COREDNS_VERSION}" \
    -o "${dir}/out/coredns" .)
  install_binary coredns "${dir}/out/coredns"
}

build_metrics_server() {
  is_current metrics-server && return 0
  log "metrics-server ${METRICS_SERVER_VERSION}: building"
  local gomod dir="${WORK_DIR}/metrics-server" pkg
  gomod="$(download_field "sigs.k8s.io/metrics-server@${METRICS_SERVER_VERSION}" GoMod)"
  [[ -f "${gomod}" ]] || die "could not download sigs.k8s.io/metrics-server@${METRICS_SERVER_VERSION}"
  ensure_go_for "$(go_line_of "${gomod}")"
  mkdir -p "${dir}"
  # The version variables metrics-server's Makefile sets (it reports them on /version).
  pkg=k8s.io/client-go/pkg/version
  GOBIN="${dir}" go install -trimpath \
    -ldflags "-s -w -X ${pkg}.gitVersion=${METRICS_SERVER_VERSION} -X ${pkg}.buildDate=${BUILD_DATE}" \
    "sigs.k8s.io/metrics-server/cmd/metrics-server@${METRICS_SERVER_VERSION}"
  install_binary metrics-server "${dir}/metrics-server"
}

build_kube_router() {
  is_current kube-router && return 0
  log "kube-router ${KUBE_ROUTER_VERSION}: building"
  local gomod dir="${WORK_DIR}/kube-router" pkg
  gomod="$(download_field "github.com/cloudnativelabs/kube-router/v2@${KUBE_ROUTER_VERSION}" GoMod)"
  [[ -f "${gomod}" ]] || die "could not download github.com/cloudnativelabs/kube-router/v2@${KUBE_ROUTER_VERSION}"
  ensure_go_for "$(go_line_of "${gomod}")"
  mkdir -p "${dir}"
  pkg=github.com/cloudnativelabs/kube-router/v2/pkg/version
  GOBIN="${dir}" go install -trimpath \
    -ldflags "-s -w -X ${pkg}.Version=${KUBE_ROUTER_VERSION} -X ${pkg}.BuildDate=${BUILD_DATE}" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@${KUBE_ROUTER_VERSION}"
  install_binary kube-router "${dir}/kube-router"
}

log "building into ${BIN_DIR} with $(go version)"
log "missing or stale: $(missing_binaries "${ALL_BINARIES[@]}" | tr '\n' ' ')"
build_kwok
build_helm
build_etcd
build_kubernetes
build_coredns
build_metrics_server
build_kube_router

stale="$(missing_binaries "${ALL_BINARIES[@]}" | tr '\n' ' ')"
[[ -z "${stale// /}" ]] || die "still missing after build: ${stale}"

elapsed=$((SECONDS - START_SECONDS))
log "done in $((elapsed / 60))m$((elapsed % 60))s; kit size $(du -sh "${KIT_DIR}" | cut -f1)"
echo "${BIN_DIR}"
