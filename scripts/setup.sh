#!/usr/bin/env bash
# Installs everything vipd's lab, tests and benchmarks need, from nothing, on Debian 12 as root:
# Debian packages, npm dependencies (which builds the AF_PACKET addon), a kube-apiserver + etcd
# built from Go modules into .cache/ (skipped when KUBEBUILDER_ASSETS already holds them), helm
# (scripts/helm-assets.sh, .cache/helm/), and the
# kubeadm cluster lab's binaries and images (scripts/cluster-assets.sh, into .cache/cluster/).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages; the lab needs network namespaces)" >&2
  exit 1
fi

packages=(iproute2 tcpdump nftables keepalived frr curl openssl libssl-dev procps psmisc iputils-ping g++ make python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  # FRR runs only inside the lab's namespaces (lab/frr.ts); the package would start zebra and
  # watchfrr in the root namespace under systemd or sysvinit. policy-rc.d exit 101 is Debian's "no
  # service starts from maintainer scripts"; an existing one (Docker's) is kept.
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    own_policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$own_policy" && chmod 755 "$own_policy"
    trap 'rm -f "$own_policy"' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$own_policy" ]; then rm -f "$own_policy"; trap - EXIT; fi
  if [[ " ${missing[*]} " == *" frr "* ]]; then
    # Nor at boot: the service we just installed is disabled (and stopped, had it started anyway).
    if [ -d /run/systemd/system ]; then systemctl disable --now frr.service >/dev/null 2>&1 || true; else update-rc.d frr disable >/dev/null 2>&1 || true; fi
  fi
fi
# The machine's own FRR is not the lab's: say so if it enables or runs daemons in this namespace.
if grep -qE '^[a-z0-9]+d=yes' /etc/frr/daemons 2>/dev/null; then
  echo "setup.sh: note: /etc/frr/daemons enables $(grep -oE '^[a-z0-9]+d=yes' /etc/frr/daemons | tr '\n' ' ')(the lab starts its own FRR per namespace)" >&2
fi
# One name per pgrep: it matches comm (at most 15 characters) and refuses a longer pattern.
for pid in $(for d in zebra bgpd bfdd staticd watchfrr; do pgrep -x "$d" || true; done); do
  if [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$(readlink /proc/self/ns/net)" ]; then
    echo "setup.sh: note: $(cat "/proc/$pid/comm" 2>/dev/null) (pid $pid, FRR) runs in the root namespace; the lab does not use it" >&2
  fi
done

# node-gyp must not download headers (no internet here): use the ones Debian's node ships.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then
  export npm_config_nodedir=/usr
fi
npm ci --no-audit --no-fund
npm run build --silent
npm run k8s:assets --silent
# helm, for the chart tests (helm lint, helm template).
npm run helm:assets --silent
# The kubeadm cluster lab: kubelet, kubeadm, containerd, ... and the images, vipd's included.
npm run cluster:assets --silent
