#!/usr/bin/env bash
# Makes sure Debian's packages for the real test node (pweza.testing.node) are installed:
# containerd and runc (the runtime), the CNI plugins (bridge, host-local, loopback, portmap),
# iproute2, iptables, ipset and conntrack (kube-proxy and the NetworkPolicy enforcer).
# Idempotent: does nothing when they are there. Installing needs root and apt-get.
# Exits non-zero when something is missing and cannot be installed.
set -euo pipefail

log() { printf '[ensure-node] %s\n' "$*" >&2; }

missing=()
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] ||
  missing+=(containernetworking-plugins)
command -v ip >/dev/null || missing+=(iproute2)
command -v iptables >/dev/null || missing+=(iptables)
command -v ipset >/dev/null || missing+=(ipset)
command -v conntrack >/dev/null || missing+=(conntrack)
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
  log "missing ${missing[*]} and this is not root on a Debian-like system: install those packages"
  exit 1
fi
log "installing ${missing[*]} from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
