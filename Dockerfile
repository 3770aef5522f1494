# syntax=docker/dockerfile:1
# vipd image. The build stage runs scripts/build-release.sh, the same script
# test/image/build-release.test.ts runs on the host (it builds the AF_PACKET addon through the
# root package's install script, compiles the TypeScript, prunes dev dependencies and assembles
# /opt/vipd). The runtime stage is node:20-bookworm-slim (RUNTIME_BASE) plus /opt/vipd.
#
#   docker build -t vipd:0.1.0 .
#   docker run --rm vipd:0.1.0 manifest pod --address=192.0.2.10 --vip_leaderelection=true --cp_enable=true
#
# The process runs as root inside the container, but the manifests drop every capability except
# NET_ADMIN and NET_RAW; docs/quickstart-kubeadm.md ("What the pod may do, and why") explains why
# that is a smaller grant than a non-root user with file capabilities.
ARG NODE_VERSION=20
# The bases are build arguments so that a host without a registry can name images it made itself
# (scripts/cluster-assets.sh builds them with debootstrap and the host's node 20); the defaults
# are the Docker Hub images every other user pulls.
ARG BUILD_BASE=node:${NODE_VERSION}-bookworm
ARG RUNTIME_BASE=node:${NODE_VERSION}-bookworm-slim

FROM ${BUILD_BASE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json tsconfig.json binding.gyp ./
COPY native ./native
COPY src ./src
COPY scripts/build-release.sh ./scripts/
RUN bash scripts/build-release.sh /opt/vipd

FROM ${RUNTIME_BASE}
LABEL org.opencontainers.image.title="vipd" \
      org.opencontainers.image.description="Keeps the Kubernetes control-plane VIP alive on bare metal" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/vipd /opt/vipd
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps
USER root
# The agent's V8 flags (src/node-flags.ts says why; measured in bench/README.md, "Footprint").
ENTRYPOINT ["node", "--max-semi-space-size=1", "--max-opt=1", "--optimize-for-size", "/opt/vipd/dist/src/cli.js"]
CMD ["run"]
