#!/usr/bin/env bash
# Builds the project's container images on this machine, with no container registry and no
# Docker engine: Debian bookworm packages (mmdebstrap), buildah and pip.
#
#   ghcr.io/pweza/pweza-core:<version>  the repo's Dockerfile, on local Debian bases, offline
#   ghcr.io/pweza/postgres:15           Debian's postgresql-15, for the chart's bundled database
#   ghcr.io/pweza/pause:1.0             our own pod sandbox process (hack/pause/pause.c)
#
# Each one lands as a docker-archive (the tag in RepoTags, which `ctr images import` keeps as
# the image name) in ${PWEZA_IMAGE_CACHE:-$HOME/.cache/pweza/images}, next to images.json
# (image name -> archive path). The last line on stdout is that directory; progress goes to
# stderr. An image is rebuilt only when its inputs change; a warm run only hashes them.
#
# Needs root (mmdebstrap and buildah run as root here); installs buildah, mmdebstrap, gcc
# and libc6-dev with apt-get when they are missing, and containerd and runc for the tests
# that run the images.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="${ROOT}/hack/build-image.sh"

SUITE="bookworm"
# The Debian pin is the suite: the mirror serves one version of each package (bookworm with
# its updates and security fixes), and the versions that went in are written next to each
# archive (<name>.packages). Set PWEZA_IMAGE_REBUILD=1 to take newer packages.
MIRRORS=(
  "deb http://deb.debian.org/debian ${SUITE} main"
  "deb http://deb.debian.org/debian ${SUITE}-updates main"
  "deb http://deb.debian.org/debian-security ${SUITE}-security main"
)
# The build base makes the virtualenv; the runtime base is the interpreter and the shared
# libraries the stdlib modules and the manylinux wheels (libstdc++ for grpcio) link to.
BUILD_BASE_PACKAGES="python3.11,python3.11-venv"
RUNTIME_BASE_PACKAGES="base-files,netbase,tzdata,ca-certificates,python3.11-minimal,libpython3.11-stdlib,libstdc++6"
POSTGRES_PACKAGES="postgresql-15,locales"
# Inside the offline build, pip upgrades itself and builds the project from these.
PIP_VERSION="26.3"
SETUPTOOLS_VERSION="84.2.1"
WHEEL_VERSION="0.48.0"

BUILD_BASE="localhost/pweza-base-build:${SUITE}"
RUNTIME_BASE="localhost/pweza-base-runtime:${SUITE}"
POSTGRES_IMAGE="ghcr.io/pweza/postgres:15"
PAUSE_IMAGE="ghcr.io/pweza/pause:1.0"
POSTGRES_UID=999
PAUSE_UID=65535

CACHE_DIR="${PWEZA_IMAGE_CACHE:-$HOME/.cache/pweza/images}"
STATE_DIR="${CACHE_DIR}/.build"
STAMP_DIR="${STATE_DIR}/stamps"
PYTHON="${PWEZA_HOST_PYTHON:-python3}"

log() { printf '[build-image %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- mmdebstrap hooks: this script runs itself as `--hook NAME ROOTFS` from mmdebstrap ---

# Users of the runtime base: root, pweza (1000, what the image runs as) and nobody. No login
# shell anywhere: there is none in the image.
hook_runtime() {
  local root="$1"
  cat >"${root}/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
pweza:x:1000:1000:pweza:/home/pweza:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
  cat >"${root}/etc/group" <<'EOF'
root:x:0:
pweza:x:1000:
nogroup:x:65534:
EOF
  printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"${root}/etc/nsswitch.conf"
  install -d -m 0700 "${root}/root"
  install -d -m 0755 -o 1000 -g 1000 "${root}/home/pweza"
  chmod 1777 "${root}/tmp"
  # The extract variant runs no maintainer scripts, so do the few whose result we need:
  # the CA bundle (what update-ca-certificates makes from the Mozilla set), the UTC
  # timezone (tzdata's postinst) and the loader cache (libc's trigger).
  install -d "${root}/etc/ssl/certs"
  cat "${root}"/usr/share/ca-certificates/mozilla/*.crt >"${root}/etc/ssl/certs/ca-certificates.crt"
  ln -sf /usr/share/zoneinfo/Etc/UTC "${root}/etc/localtime"
  echo "Etc/UTC" >"${root}/etc/timezone"
  echo "include /etc/ld.so.conf.d/*.conf" >"${root}/etc/ld.so.conf"
  ldconfig -r "${root}"
  ln -sf python3.11 "${root}/usr/bin/python3"
  # Dependencies came along that only maintainer scripts use (dpkg, debconf with perl,
  # openssl, tar): take their programs and data out, and the docs. What stays in /usr/bin
  # is the interpreter.
  local p
  for p in usr/bin usr/sbin bin sbin; do
    find "${root}/${p}" -mindepth 1 -maxdepth 1 ! -name python3.11 ! -name python3 -exec rm -rf {} +
  done
  rm -rf "${root}"/usr/lib/x86_64-linux-gnu/perl* "${root}"/usr/share/perl* \
    "${root}"/usr/libexec/dpkg "${root}"/usr/share/{doc,man,info,lintian,locale,debconf,dpkg,bash-completion} \
    "${root}"/var/lib/dpkg "${root}"/var/cache/debconf "${root}"/var/lib/debconf "${root}"/etc/dpkg \
    "${root}"/etc/alternatives "${root}"/etc/cron.daily "${root}"/etc/logrotate.d "${root}"/var/log/*
  for p in bin/sh bin/bash bin/dash usr/bin/sh usr/bin/perl usr/bin/dpkg usr/bin/apt; do
    [[ ! -e "${root}/${p}" ]] || die "runtime base still has /${p}"
  done
}

# Before postgresql-common's postinst makes its system user (with the next free id), make
# it with the ids the chart's securityContext uses.
hook_postgres_users() {
  local root="$1"
  echo "postgres:x:${POSTGRES_UID}:" >>"${root}/etc/group"
  echo "postgres:x:${POSTGRES_UID}:${POSTGRES_UID}:PostgreSQL administrator:/var/lib/postgresql:/bin/sh" >>"${root}/etc/passwd"
  # No /etc/shadow line: the passwd package's postinst (pwconv) adds a locked one.
}

hook_postgres() {
  local root="$1"
  [[ "$(awk -F: '$1 == "postgres" { print $3 ":" $4 }' "${root}/etc/passwd")" == "${POSTGRES_UID}:${POSTGRES_UID}" ]] ||
    die "the postgres user does not have uid/gid ${POSTGRES_UID}"
  # The package makes a cluster "15 main"; the entrypoint makes its own in $PGDATA.
  rm -rf "${root}/etc/postgresql/15/main" "${root}/var/lib/postgresql/15"
  install -d -m 0700 -o "${POSTGRES_UID}" -g "${POSTGRES_UID}" "${root}/var/lib/postgresql/data"
  install -m 0755 "${ROOT}/hack/postgres/pweza-postgres-entrypoint" "${root}/usr/local/bin/pweza-postgres-entrypoint"
  chmod 1777 "${root}/tmp"
  # Half the image was LLVM for the JIT (libLLVM, z3, the bitcode): without its provider
  # postgres runs every query interpreted (the entrypoint says jit=off), as the chart's small
  # database does anyway. Message translations and locale sources go too (C.UTF-8 stays).
  rm -rf "${root}"/usr/lib/postgresql/15/lib/llvmjit* "${root}"/usr/lib/postgresql/15/lib/bitcode \
    "${root}"/usr/lib/x86_64-linux-gnu/libLLVM-14.so* "${root}"/usr/lib/x86_64-linux-gnu/libz3.so* \
    "${root}"/usr/share/{doc,man,info,locale,i18n} "${root}"/var/cache/apt/* "${root}"/var/log/*
}

if [[ "${1:-}" == "--hook" ]]; then
  case "${2:-}" in
    runtime) hook_runtime "$3" ;;
    postgres-users) hook_postgres_users "$3" ;;
    postgres) hook_postgres "$3" ;;
    *) die "unknown hook ${2:-}" ;;
  esac
  exit 0
fi

# --- inputs and their hashes ---

sha() { sha256sum | cut -c1-64; }

VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "${ROOT}/pyproject.toml" | head -n1)"
[[ -n "${VERSION}" ]] || die "no version in pyproject.toml"
CORE_IMAGE="ghcr.io/pweza/pweza-core:${VERSION}"

# What the Dockerfile copies, as .dockerignore lets it in (no caches, no databases).
context_files() {
  (cd "${ROOT}" && {
    find pyproject.toml README.md src -type f \
      ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name '*.db' ! -name '*.db-wal' ! -name '*.db-shm' -print0
    find examples -mindepth 2 -maxdepth 2 -type f -name '*.py' -print0
  } | LC_ALL=C sort -z)
}

# The project's runtime requirements (pyproject's pins) and the pinned build tools.
requirements() {
  "${PYTHON}" - "${ROOT}/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
EOF
  printf 'pip==%s\nsetuptools==%s\nwheel==%s\n' "${PIP_VERSION}" "${SETUPTOOLS_VERSION}" "${WHEEL_VERSION}"
}

archive_of() { # image name -> archive file
  local name="${1##*/}"
  echo "${CACHE_DIR}/${name/:/-}.tar"
}

is_current() { # stamp-name key [archive]
  [[ "${PWEZA_IMAGE_REBUILD:-0}" != 1 && -f "${STAMP_DIR}/$1" && "$(cat "${STAMP_DIR}/$1")" == "$2" ]] &&
    [[ -z "${3:-}" || -f "$3" ]]
}

all_current() {
  is_current pweza-core "${CORE_KEY}" "$(archive_of "${CORE_IMAGE}")" &&
    is_current postgres "${POSTGRES_KEY}" "$(archive_of "${POSTGRES_IMAGE}")" &&
    is_current pause "${PAUSE_KEY}" "$(archive_of "${PAUSE_IMAGE}")" &&
    [[ -f "${CACHE_DIR}/images.json" ]]
}

# The tools, from Debian's packages when missing.
ensure_tools() {
  [[ "$(id -u)" == 0 ]] || die "needs root (mmdebstrap and buildah build root filesystems)"
  local -a missing=()
  command -v buildah >/dev/null || missing+=(buildah)
  command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
  command -v gcc >/dev/null || missing+=(gcc)
  [[ -f /usr/lib/x86_64-linux-gnu/libc.a ]] || missing+=(libc6-dev)
  command -v runc >/dev/null || missing+=(runc)
  command -v containerd >/dev/null || missing+=(containerd)
  if [[ ${#missing[@]} -gt 0 ]]; then
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]} from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
  "${PYTHON}" -m pip --version >/dev/null 2>&1 || die "${PYTHON} has no pip (it makes the wheelhouse)"
}

# A private buildah store: nothing of the machine's own container storage is touched.
# The run root holds locks and mount state that must not outlive a reboot.
bah() {
  buildah --root "${STATE_DIR}/storage" --runroot "${RUN_ROOT}" --storage-driver overlay "$@"
}

mmdebstrap_tar() { # out.tar variant packages [mmdebstrap options...]
  local out="$1" variant="$2" packages="$3"
  shift 3
  # Root mode: we are root, and the unshare mode would need a subuid range.
  mmdebstrap --mode=root --variant="${variant}" --format=tar \
    --include="${packages}" --aptopt='Acquire::Retries "3"' "$@" \
    "${SUITE}" "${out}" "${MIRRORS[@]}" >&2
}

# A customize hook that writes the package versions that went into an image next to the
# archives (<name>.packages), read by the host's dpkg-query from the chroot's database; the
# extract variant has none, so there the names of the .deb files tell.
packages_hook() { # image-name
  local out="${CACHE_DIR}/$(basename "$(archive_of "$1")" .tar).packages"
  printf '%s' 'if [ -s "$1/var/lib/dpkg/status" ]; then dpkg-query --admindir="$1/var/lib/dpkg" -W -f="\${Package} \${Version}\n";'
  printf '%s' ' else ls "$1/var/cache/apt/archives" | sed -n "s/^\([^_]*\)_\([^_]*\)_.*\.deb$/\1 \2/p" | sed "s/%3a/:/"; fi'
  printf ' > "%s"' "${out}"
}

import_rootfs() { # tarball image-name
  local tarball="$1" image="$2" ctr
  ctr="$(bah from scratch)"
  bah add "${ctr}" "${tarball}" / >/dev/null
  bah commit --quiet --rm "${ctr}" "${image}" >/dev/null
}

export_image() { # image stamp-name key
  local image="$1" stamp="$2" key="$3" out
  out="$(archive_of "${image}")"
  rm -f "${out}.tmp"
  bah push --quiet "${image}" "docker-archive:${out}.tmp:${image}" >&2
  mv -f "${out}.tmp" "${out}"
  echo "${key}" >"${STAMP_DIR}/${stamp}"
  log "${image}: $(du -h "${out}" | cut -f1) in ${out}"
}

image_exists() { bah inspect --type image "$1" >/dev/null 2>&1; }

build_pause() {
  is_current pause "${PAUSE_KEY}" "$(archive_of "${PAUSE_IMAGE}")" && return 0
  local t0=${SECONDS} dir="${WORK_DIR}/pause" ctr
  log "${PAUSE_IMAGE}: compiling hack/pause/pause.c"
  mkdir -p "${dir}"
  gcc -static -O2 -s -Wall -Wextra -Werror -o "${dir}/pause" "${ROOT}/hack/pause/pause.c"
  ctr="$(bah from scratch)"
  bah copy --chmod 0755 "${ctr}" "${dir}/pause" /pause >/dev/null
  bah config --entrypoint '["/pause"]' --cmd '' --user "${PAUSE_UID}:${PAUSE_UID}" --stop-signal SIGTERM \
    --label org.opencontainers.image.source=pweza-core/hack/pause "${ctr}"
  bah commit --quiet --rm "${ctr}" "${PAUSE_IMAGE}" >/dev/null
  export_image "${PAUSE_IMAGE}" pause "${PAUSE_KEY}"
  log "${PAUSE_IMAGE}: built in $((SECONDS - t0))s"
}

build_bases() {
  if is_current bases "${BASES_KEY}" && image_exists "${BUILD_BASE}" && image_exists "${RUNTIME_BASE}"; then
    return 0
  fi
  local t0=${SECONDS}
  log "${BUILD_BASE}: mmdebstrap ${SUITE} essential + ${BUILD_BASE_PACKAGES}"
  mmdebstrap_tar "${WORK_DIR}/build.tar" essential "${BUILD_BASE_PACKAGES}" \
    --customize-hook='chmod 1777 "$1/tmp"' \
    --customize-hook="$(packages_hook "${BUILD_BASE}")"
  import_rootfs "${WORK_DIR}/build.tar" "${BUILD_BASE}"
  log "${BUILD_BASE}: built in $((SECONDS - t0))s"

  t0=${SECONDS}
  # The extract variant unpacks the packages and their dependencies and runs none of their
  # scripts: no dpkg, apt or shell has to be in the image for it. It runs no customize
  # hooks either: the extract hooks are the last ones it runs.
  log "${RUNTIME_BASE}: mmdebstrap ${SUITE} extract ${RUNTIME_BASE_PACKAGES}"
  mmdebstrap_tar "${WORK_DIR}/runtime.tar" extract "${RUNTIME_BASE_PACKAGES}" \
    --extract-hook="$(packages_hook "${RUNTIME_BASE}")" \
    --extract-hook='"'"${SELF}"'" --hook runtime "$1"'
  import_rootfs "${WORK_DIR}/runtime.tar" "${RUNTIME_BASE}"
  rm -f "${WORK_DIR}"/{build,runtime}.tar
  echo "${BASES_KEY}" >"${STAMP_DIR}/bases"
  log "${RUNTIME_BASE}: built in $((SECONDS - t0))s"
}

build_wheelhouse() {
  [[ -f "${WHEELHOUSE}/.complete" ]] && return 0
  local t0=${SECONDS}
  log "wheelhouse: pip wheel of $(wc -l <<<"${REQUIREMENTS}") requirements with $("${PYTHON}" --version)"
  rm -rf "${STATE_DIR}"/wheelhouse-* && mkdir -p "${WHEELHOUSE}"
  printf '%s\n' "${REQUIREMENTS}" >"${WHEELHOUSE}/requirements.txt"
  # On the host, with the network; the image build has none. Wheels of other platforms would
  # not install there: this host is linux x86_64 like Debian 12, and cp311.
  "${PYTHON}" -m pip wheel --quiet --disable-pip-version-check --prefer-binary \
    -w "${WHEELHOUSE}" -r "${WHEELHOUSE}/requirements.txt" >&2
  touch "${WHEELHOUSE}/.complete"
  log "wheelhouse: $(find "${WHEELHOUSE}" -name '*.whl' | wc -l) wheels, $(du -sh "${WHEELHOUSE}" | cut -f1), in $((SECONDS - t0))s"
}

build_core() {
  is_current pweza-core "${CORE_KEY}" "$(archive_of "${CORE_IMAGE}")" && return 0
  build_bases
  build_wheelhouse
  local t0=${SECONDS} ctx="${WORK_DIR}/context"
  log "${CORE_IMAGE}: buildah bud of the Dockerfile, offline"
  mkdir -p "${ctx}/wheels"
  context_files | (cd "${ROOT}" && tar --null -T - -cf -) | tar -xf - -C "${ctx}"
  cp -l "${WHEELHOUSE}"/*.whl "${ctx}/wheels/"
  # OCI isolation (runc): buildah 1.28's chroot isolation cannot take --network none.
  bah bud --isolation oci --network none --pull=never --format docker \
    --file "${ROOT}/Dockerfile" \
    --build-arg "BUILD_IMAGE=${BUILD_BASE}" \
    --build-arg "RUNTIME_IMAGE=${RUNTIME_BASE}" \
    --build-arg "PIP_INSTALL_OPTIONS=--no-index --find-links /wheels" \
    --tag "${CORE_IMAGE}" "${ctx}" >&2
  export_image "${CORE_IMAGE}" pweza-core "${CORE_KEY}"
  log "${CORE_IMAGE}: built in $((SECONDS - t0))s"
}

build_postgres() {
  is_current postgres "${POSTGRES_KEY}" "$(archive_of "${POSTGRES_IMAGE}")" && return 0
  local t0=${SECONDS} ctr
  log "${POSTGRES_IMAGE}: mmdebstrap ${SUITE} essential + ${POSTGRES_PACKAGES}"
  # Essential (dpkg runs the packages' scripts, which need perl and a shell), no apt.
  mmdebstrap_tar "${WORK_DIR}/postgres.tar" essential "${POSTGRES_PACKAGES}" \
    --essential-hook='"'"${SELF}"'" --hook postgres-users "$1"' \
    --customize-hook='"'"${SELF}"'" --hook postgres "$1"' \
    --customize-hook="$(packages_hook "${POSTGRES_IMAGE}")"
  ctr="$(bah from scratch)"
  bah add "${ctr}" "${WORK_DIR}/postgres.tar" / >/dev/null
  bah config --user "${POSTGRES_UID}:${POSTGRES_UID}" \
    --env PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin \
    --env PGDATA=/var/lib/postgresql/data/pgdata \
    --env LANG=C.UTF-8 \
    --entrypoint '["/usr/local/bin/pweza-postgres-entrypoint"]' --cmd '' \
    --workingdir /tmp --port 5432 \
    --stop-signal SIGINT "${ctr}"
  # SIGINT above: postgres' fast shutdown (SIGTERM waits for every client to leave).
  bah commit --quiet --rm "${ctr}" "${POSTGRES_IMAGE}" >/dev/null
  rm -f "${WORK_DIR}/postgres.tar"
  export_image "${POSTGRES_IMAGE}" postgres "${POSTGRES_KEY}"
  log "${POSTGRES_IMAGE}: built in $((SECONDS - t0))s"
}

# --- main ---

# Each image's key hashes what goes into it: its recipe (the settings and the functions of
# this script that build it, as bash prints them, so a change elsewhere in the script, a
# comment or another image's recipe, does not rebuild it) and its input files.
recipe() { # function names...
  declare -f "$@"
}

"${PYTHON}" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
  die "${PYTHON} is not Python 3.11 (the wheels must be cp311 like Debian 12's python3.11); set PWEZA_HOST_PYTHON"

REQUIREMENTS="$(requirements)"
WHEELS_KEY="$(printf '%s\n%s\n' "${REQUIREMENTS}" "$("${PYTHON}" -c 'import sys, sysconfig; print(sys.implementation.cache_tag, sysconfig.get_platform())')" | sha)"
BASES_KEY="$({
  printf '%s\n' "${SUITE}" "${MIRRORS[@]}" "${BUILD_BASE_PACKAGES}" "${RUNTIME_BASE_PACKAGES}" "${BUILD_BASE}" "${RUNTIME_BASE}"
  recipe hook_runtime mmdebstrap_tar packages_hook import_rootfs build_bases
} | sha)"
CORE_KEY="$({
  echo "${BASES_KEY} ${WHEELS_KEY} ${VERSION}"
  recipe context_files build_wheelhouse build_core export_image
  sha256sum "${ROOT}/Dockerfile"
  context_files | (cd "${ROOT}" && xargs -0 sha256sum)
} | sha)"
POSTGRES_KEY="$({
  printf '%s\n' "${SUITE}" "${MIRRORS[@]}" "${POSTGRES_PACKAGES}" "${POSTGRES_UID}"
  recipe hook_postgres_users hook_postgres mmdebstrap_tar packages_hook export_image build_postgres
  cat "${ROOT}/hack/postgres/pweza-postgres-entrypoint"
} | sha)"
PAUSE_KEY="$({
  echo "${PAUSE_UID}"
  recipe export_image build_pause
  cat "${ROOT}/hack/pause/pause.c"
  gcc --version 2>/dev/null | head -n1
} | sha)"
WHEELHOUSE="${STATE_DIR}/wheelhouse-${WHEELS_KEY:0:16}"

# Fast path: nothing changed, so no lock and no tool is needed.
if all_current; then
  log "all images up to date in ${CACHE_DIR}"
  echo "${CACHE_DIR}"
  exit 0
fi

ensure_tools

mkdir -p "${STAMP_DIR}"
exec 9>"${STATE_DIR}/.lock"
# Another run may be building the same images: wait for it (bounded), then see what is left.
flock -w 3600 9 || die "another hack/build-image.sh held ${STATE_DIR}/.lock for an hour"

START_SECONDS=${SECONDS}
WORK_DIR="$(mktemp -d "${STATE_DIR}/work.XXXXXX")"
trap 'rm -rf "${WORK_DIR}"' EXIT

# buildah's run root holds locks and mount state that must not outlive a reboot.
RUN_ROOT="/run/pweza-build-image/$(printf '%s' "${CACHE_DIR}" | sha | cut -c1-12)"
# Leftover working containers of a run that was killed.
bah rm --all >/dev/null 2>&1 || true

log "building into ${CACHE_DIR}"
build_pause
build_core
build_postgres
# Images replaced by a rebuild of the same tag, and the build stages.
bah rmi --prune >/dev/null 2>&1 || true

{
  printf '{\n'
  printf '  "%s": "%s",\n' "${CORE_IMAGE}" "$(archive_of "${CORE_IMAGE}")"
  printf '  "%s": "%s",\n' "${POSTGRES_IMAGE}" "$(archive_of "${POSTGRES_IMAGE}")"
  printf '  "%s": "%s"\n' "${PAUSE_IMAGE}" "$(archive_of "${PAUSE_IMAGE}")"
  printf '}\n'
} >"${CACHE_DIR}/images.json.tmp"
mv -f "${CACHE_DIR}/images.json.tmp" "${CACHE_DIR}/images.json"
all_current || die "some image is still missing after the build"

elapsed=$((SECONDS - START_SECONDS))
log "done in $((elapsed / 60))m$((elapsed % 60))s"
echo "${CACHE_DIR}"
