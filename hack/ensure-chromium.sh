#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the tests that render pages in a real browser
# (the API docs now, the web UI next). Idempotent; installing needs root and apt-get.
set -euo pipefail
command -v chromium >/dev/null && exit 0
if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "[ensure-chromium] chromium is missing and this is not root on a Debian-like system: install it" >&2
  exit 1
fi
echo "[ensure-chromium] installing chromium from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium >&2
