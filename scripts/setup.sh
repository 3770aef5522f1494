#!/usr/bin/env bash
# Installs everything vipd's lab, tests and benchmarks need, from nothing, on Debian 12 as root:
# Debian packages, npm dependencies (which builds the AF_PACKET addon), a kube-apiserver + etcd
# built from Go modules into .cache/ (skipped when KUBEBUILDER_ASSETS already holds them), and the
# kubeadm cluster lab's binaries and images (scripts/cluster-assets.sh, into .cache/cluster/).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run as root (it installs Debian packages; the lab needs network namespaces)" >&2
  exit 1
fi

packages=(iproute2 tcpdump nftables keepalived curl openssl procps psmisc iputils-ping g++ make python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# node-gyp must not download headers (no internet here): use the ones Debian's node ships.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then
  export npm_config_nodedir=/usr
fi
npm ci --no-audit --no-fund
npm run build --silent
npm run k8s:assets --silent
# The kubeadm cluster lab: kubelet, kubeadm, containerd, ... and the images, vipd's included.
npm run cluster:assets --silent
