#!/usr/bin/env bash
# Builds everything the kubeadm cluster lab (lab/cluster.ts, `npm run cluster`) needs, offline
# apart from the Debian mirror, the npm registry and the Go module proxy, into .cache/cluster/,
# and prints, as the LAST line on stdout, the absolute folder holding it. Everything else goes to
# stderr.
#
#   npm run --silent cluster:assets      # -> /abs/.cache/cluster/v1.37.2-containerd-v2.4.2-crictl-v1.37.0
#   scripts/cluster-assets.sh --vipd-dir # the same, but prints the folder of vipd's image for these sources
#
# The folder holds bin/ (kubelet kubeadm kube-controller-manager kube-scheduler kubectl containerd
# containerd-shim-runc-v2 ctr crictl), images/*.tar (docker-archives: pause, etcd and the three
# control-plane images, tagged exactly as `kubeadm config images list` names them) and
# vipd/<source hash>/vipd.tar (vipd's image from the project's Dockerfile; its tag is in ./tag) and
# frr/frr.tar (the BGP sidecar's image, from Debian's frr package; see build_frr_image).
#
# Environment: DEBIAN_MIRROR (for debootstrap, default http://deb.debian.org/debian), VIPD_CLUSTER_CACHE (default .cache/cluster), K8S_ASSETS_JOBS (go build -p, default 2),
# CLUSTER_ASSETS_NO_BUILD=1 (fail instead of building).
#
# Invariants (as scripts/k8s-assets.sh):
# - A folder exists under .cache/cluster/ only once everything in it was built and checked: it is
#   made in a temporary sibling and renamed into place as the last step (the `.complete` stamp is
#   written just before). A killed build is never mistaken for a finished one. Runs serialise on a lock.
# - The Kubernetes version comes from scripts/k8s-assets/kube-apiserver/go.mod, the one pin the
#   kube-apiserver of the API tests uses too, so the control plane is one release.
# - vipd's image depends on the sources, so it has its own folder per hash of what the Dockerfile
#   copies: a warm run reuses the tools and rebuilds only the image, and only when the sources changed.
# - Container storage (buildah's) lives in the cache too, never in /var/lib/containers, and no build
#   gets a container network: the bases are imported from tarballs, the vipd build uses the host's.
set -euo pipefail

main() {
  PRINT=dest; [[ "${1:-}" == --vipd-dir ]] && PRINT=vipd
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  CACHE="${VIPD_CLUSTER_CACHE:-$ROOT/.cache/cluster}"
  K8S_DIR="$(bash "$ROOT/scripts/k8s-assets.sh" | tail -1)" # kube-apiserver + etcd, built or cached

  log() { printf '[cluster-assets] %s\n' "$*" >&2; }
  die() { log "error: $*"; exit 1; }

  K8S_VERSION="$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$ROOT/scripts/k8s-assets/kube-apiserver/go.mod")"
  CONTAINERD_VERSION=v2.4.2
  CRICTL_VERSION=v1.37.0
  # What kubeadm $K8S_VERSION asks for (checked against `kubeadm config images list` below).
  PAUSE_TAG=3.10.2
  ETCD_TAG=3.7.0-0

  DEST="$CACHE/$K8S_VERSION-containerd-$CONTAINERD_VERSION-crictl-$CRICTL_VERSION"
  STAMP=".complete"
  SRC_HASH="$(source_hash)"
  VIPD_DEST="$DEST/vipd/$SRC_HASH"
  VIPD_TAG="localhost/vipd:0.1.0-$SRC_HASH"

  FRR_DEST="$DEST/frr"
  if [[ -f "$DEST/$STAMP" && -f "$VIPD_DEST/$STAMP" && -f "$FRR_DEST/$STAMP" ]]; then
    log "cached: $(basename "$DEST"), vipd image $SRC_HASH"
    result
    exit 0
  fi
  [[ -z "${CLUSTER_ASSETS_NO_BUILD:-}" ]] || die "would build into $DEST, but CLUSTER_ASSETS_NO_BUILD is set"
  [[ "$(id -u)" == 0 ]] || die "run as root (Debian packages, container storage)"
  command -v go >/dev/null || die "no Go toolchain (needed for kubelet, kubeadm, containerd, crictl)"

  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  if ! flock -n 9; then log "another build holds $CACHE/.lock; waiting"; flock 9; fi
  # Holding the lock, nothing else builds: any scratch folder left is from a killed run.
  rm -rf "$CACHE"/.build-* "$CACHE"/.vipd-* "$CACHE"/.base-* "$CACHE"/.frr-*

  t_all=$SECONDS
  packages
  # buildah state of its own: nothing lands in /var/lib/containers or /run/containers.
  STORE="$CACHE/containers"
  B=(buildah --root "$STORE/storage" --runroot "$STORE/run" --storage-driver overlay)
  # No CAP_SYS_RESOURCE on hosts like this one: the runtime may not raise nofile above the hard
  # limit, and buildah itself lowers nproc to 32768, so ask for exactly what there is.
  UL=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=32768:32768)

  # buildah 1.28 keeps a blob-info cache and a CNI lock at fixed paths whatever --root says; they
  # are removed again if this run made them, so the host keeps nothing of the build.
  local stray=() p
  for p in /var/lib/containers /etc/cni; do [[ -e $p ]] || stray+=("$p"); done
  [[ -f "$DEST/$STAMP" ]] || build_tools_and_images
  [[ -f "$VIPD_DEST/$STAMP" ]] || build_vipd_image
  [[ -f "$FRR_DEST/$STAMP" ]] || build_frr_image
  # Older vipd images are dead weight (each is ~270 MB in the store and the archive).
  for d in "$DEST"/vipd/*/; do [[ "${d%/}" == "$VIPD_DEST" ]] || rm -rf "$d"; done
  "${B[@]}" rmi --prune >/dev/null 2>&1 || true
  for p in "${stray[@]}"; do rm -rf "$p"; done
  log "done in $((SECONDS - t_all))s: $DEST"
  result
}

result() { if [[ $PRINT == vipd ]]; then echo "$VIPD_DEST"; else echo "$DEST"; fi; }

# The files the Dockerfile copies (and the Dockerfile): any change makes a new image.
source_hash() {
  (cd "$ROOT" && find Dockerfile package.json package-lock.json tsconfig.json binding.gyp native src scripts/build-release.sh \
    -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
}

packages() {
  # buildah builds the images (no daemon, no podman needed: bases come from `ADD rootfs.tar`),
  # runc runs its RUN steps and the nodes' containers (crun 1.8 refuses this hybrid cgroup host),
  # debootstrap makes the Debian base. uidmap comes with buildah; fuse-overlayfs and CNI plugins are
  # not needed as root on ext4 with host-network pods only.
  local want=(buildah runc debootstrap gcc libc6-dev) missing=() p
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]}"
    local t0=$SECONDS
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    log "packages in $((SECONDS - t0))s"
  fi
}

build_tools_and_images() {
  WORK="$(mktemp -d "$CACHE/.build-XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  mkdir -p "$WORK/out/bin" "$WORK/out/images"
  local bin="$WORK/out/bin" t0

  # Two cores shared with others: low priority, as for the kube-apiserver build.
  local jobs="${K8S_ASSETS_JOBS:-2}"
  export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 GOMAXPROCS="${GOMAXPROCS:-2}"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local kv=k8s.io/component-base/version
  local ld="-s -w -X $kv.gitVersion=$K8S_VERSION -X $kv.gitMajor=1 -X $kv.gitMinor=$minor -X $kv.gitTreeState=clean -X $kv.buildDate=1970-01-01T00:00:00Z"
  # k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces the staging modules), so it
  # is built from a wrapper module: kube-apiserver's, with only the module line changed, so the
  # versions have one source.
  mkdir -p "$WORK/src-kubernetes"
  sed 's#^module .*#module vipd.test/cluster-assets/kubernetes#' "$ROOT/scripts/k8s-assets/kube-apiserver/go.mod" > "$WORK/src-kubernetes/go.mod"
  cp "$ROOT/scripts/k8s-assets/kube-apiserver/go.sum" "$WORK/src-kubernetes/"
  local c
  for c in kubelet kubeadm kube-controller-manager kube-scheduler kubectl; do
    t0=$SECONDS
    log "building $c"
    (cd "$WORK/src-kubernetes" && nice -n 10 go build -p "$jobs" -trimpath -ldflags "$ld" -o "$bin/$c" "k8s.io/kubernetes/cmd/$c")
    log "built $c in $((SECONDS - t0))s"
  done
  t0=$SECONDS
  log "building containerd $CONTAINERD_VERSION"
  GOBIN="$bin" nice -n 10 go install -p "$jobs" -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
  log "built containerd in $((SECONDS - t0))s"
  t0=$SECONDS
  GOBIN="$bin" nice -n 10 go install -p "$jobs" -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  log "built crictl in $((SECONDS - t0))s"
  for c in kubelet kube-controller-manager kube-scheduler containerd ctr crictl; do
    "$bin/$c" --version >/dev/null 2>&1 || die "$c does not run"
  done
  "$bin/kubeadm" version -o short >/dev/null 2>&1 || die "kubeadm does not run"
  "$bin/kubectl" version --client >/dev/null 2>&1 || die "kubectl does not run"

  # The images kubeadm will look for: nothing is pulled, so the names must match to the tag.
  local want
  want="$("$bin/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null)"
  grep -qx "registry.k8s.io/pause:$PAUSE_TAG" <<<"$want" || die "kubeadm wants another pause: $want"
  grep -qx "registry.k8s.io/etcd:$ETCD_TAG" <<<"$want" || die "kubeadm wants another etcd: $want"

  t0=$SECONDS
  # pause from the same Kubernetes release, static so the image needs nothing else.
  local pc
  pc="$(cd "$WORK/src-kubernetes" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
  mkdir -p "$WORK/img/pause"
  gcc -Os -static -DVERSION="v$PAUSE_TAG-vipd" -o "$WORK/img/pause/pause" "$pc"
  strip "$WORK/img/pause/pause"
  scratch_image "registry.k8s.io/pause:$PAUSE_TAG" /pause "$WORK/img/pause/pause" pause
  # Each control-plane binary alone: kubeadm's manifests call them by name and probe over HTTP,
  # so no shell is needed. etcd is the project's pinned one under the tag kubeadm asks for.
  scratch_image "registry.k8s.io/etcd:$ETCD_TAG" /usr/local/bin/etcd "$K8S_DIR/etcd" etcd
  scratch_image "registry.k8s.io/kube-apiserver:$K8S_VERSION" /usr/local/bin/kube-apiserver "$K8S_DIR/kube-apiserver" kube-apiserver
  scratch_image "registry.k8s.io/kube-controller-manager:$K8S_VERSION" /usr/local/bin/kube-controller-manager "$bin/kube-controller-manager" kube-controller-manager
  scratch_image "registry.k8s.io/kube-scheduler:$K8S_VERSION" /usr/local/bin/kube-scheduler "$bin/kube-scheduler" kube-scheduler
  log "control-plane images in $((SECONDS - t0))s"

  printf 'kubernetes %s\ncontainerd %s\ncrictl %s\ngo %s\n' "$K8S_VERSION" "$CONTAINERD_VERSION" "$CRICTL_VERSION" "$(go env GOVERSION)" > "$WORK/out/$STAMP"
  rm -rf "$DEST"
  mkdir -p "$CACHE"
  mv -T "$WORK/out" "$DEST"
  rm -rf "$WORK"; trap - EXIT
}

# scratch_image <tag> <path in image> <file> <archive name>: one binary (+ /tmp) in an empty image.
scratch_image() {
  local tag=$1 path=$2 file=$3 name=$4 d="$WORK/img/ctx-$4"
  rm -rf "$d"; mkdir -p "$d/root$(dirname "$path")" "$d/root/tmp"; chmod 1777 "$d/root/tmp"
  cp "$file" "$d/root$path"
  tar -C "$d/root" -cf "$d/root.tar" .
  printf 'FROM scratch\nADD root.tar /\nENV PATH=/usr/local/bin:/usr/bin:/bin\nENTRYPOINT ["%s"]\n' "$path" > "$d/Containerfile"
  [[ $name == pause ]] && printf 'USER 65535:65535\n' >> "$d/Containerfile"
  "${B[@]}" bud -q --network none --pull=false "${UL[@]}" -f "$d/Containerfile" -t "$tag" "$d" >/dev/null
  "${B[@]}" push -q "$tag" "docker-archive:$WORK/out/images/$name.tar:$tag" >/dev/null
  log "image $tag"
}

# Bases for the Dockerfile without a registry: Debian from debootstrap plus the host's node 20
# (Debian 12's own nodejs is 18, below vipd's engines); the build base also gets npm, the headers
# node-gyp needs and the host's CA bundle, because npm's TLS may go through a local CA.
base_images() {
  if "${B[@]}" inspect localhost/vipd-cl-node:20-bookworm >/dev/null 2>&1 && "${B[@]}" inspect localhost/vipd-cl-node:20-bookworm-slim >/dev/null 2>&1; then return; fi
  local t0=$SECONDS mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}" tmp
  [[ "$(node -p 'process.versions.node.split(".")[0]')" == 20 ]] || die "the host's node is not 20: $(node --version)"
  tmp="$(mktemp -d "$CACHE/.base-XXXXXX")"
  local r="$tmp/rootfs"
  log "debootstrap bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$r" "$mirror" >"$tmp/debootstrap.log" 2>&1 || { tail -20 "$tmp/debootstrap.log" >&2; die "debootstrap failed"; }
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*
  local ctx="$tmp/ctx"; mkdir -p "$ctx"
  tar -C "$r" -cf "$ctx/debian.tar" .
  rm -rf "$r"
  local nodebin; nodebin="$(readlink -f "$(command -v node)")"
  tar -C / -cf "$ctx/node-slim.tar" "${nodebin#/}"
  tar -C / -cf "$ctx/node-full.tar" "${nodebin#/}" usr/bin/npm usr/bin/npx usr/lib/node_modules/npm usr/include/node etc/ssl/certs/ca-certificates.crt
  printf 'FROM scratch\nADD debian.tar /\nARG NODE_TAR\nADD ${NODE_TAR} /\nARG EXTRA_CA=\nENV NODE_EXTRA_CA_CERTS=${EXTRA_CA}\nCMD ["node"]\n' > "$ctx/Containerfile"
  "${B[@]}" bud -q --network none --pull=false "${UL[@]}" --build-arg NODE_TAR=node-slim.tar -t localhost/vipd-cl-node:20-bookworm-slim "$ctx" >/dev/null
  "${B[@]}" bud -q --network none --pull=false "${UL[@]}" --build-arg NODE_TAR=node-full.tar \
    --build-arg EXTRA_CA=/etc/ssl/certs/ca-certificates.crt -t localhost/vipd-cl-node:20-bookworm "$ctx" >/dev/null
  rm -rf "$tmp"
  log "base images in $((SECONDS - t0))s"
}

build_vipd_image() {
  base_images
  local t0=$SECONDS out
  out="$(mktemp -d "$CACHE/.vipd-XXXXXX")"
  trap 'rm -rf "$out"' EXIT
  log "building $VIPD_TAG from the Dockerfile"
  # --network host: the build stage needs the Debian mirror (apt-get) and the npm registry (npm ci).
  "${B[@]}" bud --runtime runc --runtime-flag "root=$STORE/runc" --network host --pull=false "${UL[@]}" \
    --build-arg BUILD_BASE=localhost/vipd-cl-node:20-bookworm --build-arg RUNTIME_BASE=localhost/vipd-cl-node:20-bookworm-slim \
    -f "$ROOT/Dockerfile" -t "$VIPD_TAG" "$ROOT" > "$out/build.log" 2>&1 || { tail -30 "$out/build.log" >&2; die "vipd image build failed"; }
  "${B[@]}" push -q "$VIPD_TAG" "docker-archive:$out/vipd.tar:$VIPD_TAG" >/dev/null
  echo "$VIPD_TAG" > "$out/tag"
  touch "$out/$STAMP"
  mkdir -p "$(dirname "$VIPD_DEST")"; rm -rf "$VIPD_DEST"; mv -T "$out" "$VIPD_DEST"
  trap - EXIT
  # The tag alone, not the layers: the next build reuses cached bases.
  "${B[@]}" rmi "$VIPD_TAG" >/dev/null 2>&1 || true
  log "vipd image in $((SECONDS - t0))s"
}

# The BGP sidecar's image for the lab, tagged as the manifest's default (quay.io/frrouting/frr:8.4.4)
# so `vipd manifest pod` runs unchanged: no registry here, and Debian 12 ships the same FRR release.
# What the sidecar's script needs of FRR's own image is provided: /sbin/tini, and
# /usr/lib/frr/docker-start (start the daemons in /etc/frr/daemons under watchfrr, stay in the
# foreground). The image's frrvty gid goes to ./vty-gid: the lab passes it as --frr-vty-gid.
build_frr_image() {
  base_images
  local t0=$SECONDS out ctx tag=quay.io/frrouting/frr:8.4.4
  out="$(mktemp -d "$CACHE/.frr-XXXXXX")"
  trap 'rm -rf "$out"' EXIT
  ctx="$out/ctx"; mkdir -p "$ctx"
  cat > "$ctx/docker-start" <<'EOS'
#!/bin/bash
set -e
chown -R frr:frr /etc/frr || echo "docker-start: could not give /etc/frr to frr" >&2
/usr/lib/frr/frrinit.sh start
exec sleep infinity
EOS
  chmod 755 "$ctx/docker-start"
  cat > "$ctx/Containerfile" <<'EOS'
FROM localhost/vipd-cl-node:20-bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends frr tini >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb && ln -s /usr/bin/tini /sbin/tini
COPY docker-start /usr/lib/frr/docker-start
CMD ["/sbin/tini", "--", "/usr/lib/frr/docker-start"]
EOS
  log "building $tag from Debian's frr"
  # --network host: apt-get needs the Debian mirror.
  "${B[@]}" bud --runtime runc --runtime-flag "root=$STORE/runc" --network host --pull=false "${UL[@]}" \
    -t "$tag" "$ctx" > "$out/build.log" 2>&1 || { tail -30 "$out/build.log" >&2; die "FRR image build failed"; }
  local ctr; ctr="$("${B[@]}" from --pull=false "$tag")"
  "${B[@]}" run --runtime runc --runtime-flag "root=$STORE/runc" --network none "$ctr" -- getent group frrvty | cut -d: -f3 > "$out/vty-gid"
  "${B[@]}" rm "$ctr" >/dev/null
  [[ -s "$out/vty-gid" ]] || die "FRR image has no frrvty group"
  "${B[@]}" push -q "$tag" "docker-archive:$out/frr.tar:$tag" >/dev/null
  echo "$tag" > "$out/tag"
  rm -rf "$ctx"
  touch "$out/$STAMP"
  rm -rf "$FRR_DEST"; mv -T "$out" "$FRR_DEST"
  trap - EXIT
  "${B[@]}" rmi "$tag" >/dev/null 2>&1 || true
  log "FRR image in $((SECONDS - t0))s (frrvty gid $(cat "$FRR_DEST/vty-gid"))"
}

main "$@"; exit
