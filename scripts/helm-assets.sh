#!/usr/bin/env bash
# Makes a helm binary available for the chart tests (helm lint / helm template) and prints, as the
# LAST line on stdout, its absolute path. Everything else goes to stderr. Also puts the Prometheus
# Operator's ServiceMonitor, PodMonitor and PrometheusRule CRDs (from its Go module, the files it
# publishes in example/prometheus-operator-crd) in .cache/helm/prometheus-operator-crds-<version>/,
# so the chart's monitoring objects can be checked by a real API server.
#
#   npm run --silent helm:assets            # -> /abs/path/.cache/helm/v4.3.2/helm
#
# Environment: VIPD_HELM (use that binary), VIPD_HELM_CACHE (default .cache/helm),
# HELM_ASSETS_NO_BUILD=1 (fail instead of building).
#
# helm is built with `go install helm.sh/helm/v4/cmd/helm@<version>` from the Go module proxy, so
# it is exactly upstream's go.mod and go.sum. A folder under the cache exists only once the binary in
# it answered `helm version`: it is built in a temporary sibling that is renamed into place last.
set -euo pipefail

# The CRDs are plain files in the module; nothing is built.
crds() {
  local dest="$CACHE/prometheus-operator-crds-$PROM_OPERATOR_VERSION" dir
  [[ -f "$dest/monitoring.coreos.com_prometheusrules.yaml" ]] && return 0
  command -v go >/dev/null || die "no Go toolchain to fetch the Prometheus Operator CRDs"
  dir="$(GOTOOLCHAIN=local GOFLAGS= go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$dir/example/prometheus-operator-crd" ]] || die "cannot fetch github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION"
  rm -rf "$dest.tmp"; mkdir -p "$dest.tmp"
  for k in servicemonitors podmonitors prometheusrules; do cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$k.yaml" "$dest.tmp/"; done
  chmod 644 "$dest.tmp"/*
  mv "$dest.tmp" "$dest"
  log "Prometheus Operator CRDs $PROM_OPERATOR_VERSION in $dest"
}

main() {
  HELM_VERSION=v4.3.2
  # v0.94.0 is the newest the module proxy serves here (v0.95.x: 403).
  PROM_OPERATOR_VERSION=v0.94.0
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  CACHE="${VIPD_HELM_CACHE:-$ROOT/.cache/helm}"
  log() { printf '[helm-assets] %s\n' "$*" >&2; }
  die() { log "error: $*"; exit 1; }
  mkdir -p "$CACHE"

  crds
  if [[ -n "${VIPD_HELM:-}" ]]; then
    [[ -x "$VIPD_HELM" ]] || die "VIPD_HELM=$VIPD_HELM is not an executable"
    log "using VIPD_HELM"
    echo "$VIPD_HELM"
    exit 0
  fi
  DEST="$CACHE/$HELM_VERSION"
  if [[ -x "$DEST/helm" ]]; then
    log "cached: helm $HELM_VERSION"
    echo "$DEST/helm"
    exit 0
  fi
  [[ -z "${HELM_ASSETS_NO_BUILD:-}" ]] || die "would build helm into $DEST, but HELM_ASSETS_NO_BUILD is set"
  command -v go >/dev/null || die "helm not built and no Go toolchain found: install Go >= 1.26 or set VIPD_HELM to a helm binary"

  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock 9
  if [[ -x "$DEST/helm" ]]; then echo "$DEST/helm"; exit 0; fi
  rm -rf "$CACHE"/.build-*
  WORK="$(mktemp -d "$CACHE/.build-XXXXXX")"
  trap 'rm -rf "$WORK"' EXIT
  local t0=$SECONDS
  log "building helm $HELM_VERSION (go install; a few minutes on a cold Go cache)"
  # Lowered priority, as for the API server build: it must not starve tests that watch timers.
  GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS= GOBIN="$WORK" nice -n 10 \
    go install -trimpath -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  "$WORK/helm" version --short >&2 || die "built helm does not run"
  mv "$WORK" "$DEST"
  trap - EXIT
  log "built helm $HELM_VERSION in $((SECONDS - t0))s"
  echo "$DEST/helm"
}

main "$@"
