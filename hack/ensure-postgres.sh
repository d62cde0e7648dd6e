#!/usr/bin/env bash
# Makes sure Debian's PostgreSQL server binaries are installed, for the throwaway test
# servers of pweza.testing.postgres (initdb, pg_ctl, postgres and psql under
# /usr/lib/postgresql/<version>/bin). Idempotent: does nothing when they are there.
#
# Installing needs root and apt-get. The tests do not use the package's own cluster (if the
# package creates one): they run their own server on a free 127.0.0.1 port, as the system
# user pweza-pg.
# Exits non-zero when PostgreSQL is missing and cannot be installed.
set -euo pipefail

log() { printf '[ensure-postgres] %s\n' "$*" >&2; }

have_postgres() {
  local dir
  if [ -n "${PWEZA_PG_BIN:-}" ]; then
    dir="$PWEZA_PG_BIN"
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ] && [ -x "$dir/psql" ] && return 0
    return 1
  fi
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ] && [ -x "$dir/psql" ] && return 0
  done
  return 1
}

if have_postgres; then
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "PostgreSQL is not installed and this is not root on a Debian-like system:"
  log "install the 'postgresql' package (or set PWEZA_PG_BIN to a directory with initdb, pg_ctl, postgres, psql)"
  exit 1
fi

log "installing PostgreSQL from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends postgresql >&2

if ! have_postgres; then
  log "ERROR: installed the postgresql package but found no initdb under /usr/lib/postgresql/*/bin"
  exit 1
fi
log "PostgreSQL installed: $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
