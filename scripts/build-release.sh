#!/usr/bin/env bash
# Builds a self-contained vipd release into OUT (default /opt/vipd). The Dockerfile's build stage
# runs exactly this script, and test/image/build-release.test.ts runs it on the host, so what the
# image contains is proven by what runs here.
#
#   scripts/build-release.sh [OUT]
#
# OUT gets: package.json, dist/src/** (compiled JavaScript), build/Release/afpacket.node (the
# AF_PACKET addon) and node_modules with production dependencies only. Run it with
# `node OUT/dist/src/cli.js`.
#
# Needs: node 20 + npm, python3, make and a C/C++ compiler (node-gyp), the npm registry (or a warm
# npm cache). The build happens in a scratch copy of the sources, so a developer tree's
# node_modules, dist and build folders are neither used nor touched.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-/opt/vipd}")

fail() {
  echo "build-release.sh: $*" >&2
  exit 1
}

if [ -e "$out" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
  fail "$out exists and is not empty; give an empty or new folder"
fi
for tool in node npm python3 make cc; do
  command -v "$tool" >/dev/null || fail "needs $tool (Debian: apt-get install nodejs npm python3 make g++)"
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || fail "needs Node.js 20 or newer (found $(node --version))"

work=$(mktemp -d "${TMPDIR:-/tmp}/vipd-release-XXXXXX")
trap 'rm -rf "$work"' EXIT

# The sources, and nothing else (the same list the Dockerfile copies).
cp -a "$root/package.json" "$root/package-lock.json" "$root/tsconfig.json" "$root/binding.gyp" "$work/"
cp -a "$root/native" "$root/src" "$work/"

# node-gyp would download Node's headers; the running node's own are enough when it ships them
# (Debian's nodejs: /usr/include/node; the official node images: /usr/local/include/node).
if [ -z "${npm_config_nodedir:-}" ]; then
  prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
  if [ -f "$prefix/include/node/node_api.h" ]; then export npm_config_nodedir="$prefix"; fi
fi

cd "$work"
echo "build-release.sh: npm ci (builds the AF_PACKET addon through the root install script)" >&2
npm ci --no-audit --no-fund --loglevel=error >&2
[ -f build/Release/afpacket.node ] || fail "npm ci did not build build/Release/afpacket.node"

echo "build-release.sh: compiling TypeScript (src/ only)" >&2
cat >tsconfig.release.json <<'JSON'
{ "extends": "./tsconfig.json", "include": ["src/**/*.ts"] }
JSON
npx --no-install tsc -p tsconfig.release.json >&2

echo "build-release.sh: pruning dev dependencies" >&2
npm prune --omit=dev --no-audit --no-fund --loglevel=error >&2

# Type declarations and source maps of dependencies are never loaded at run time (about 40% of the
# tree, mostly @kubernetes/client-node's generated API). Our own maps stay, for stack traces.
find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete
find node_modules -mindepth 1 -type d -empty -delete

# The native pieces must load with the production tree alone.
node -e "require('./build/Release/afpacket.node'); require('netlink'); require('raw-socket')"

mkdir -p "$out/build/Release"
cp -a package.json dist node_modules "$out/"
cp -a build/Release/afpacket.node "$out/build/Release/"
echo "build-release.sh: vipd $(node -p 'require("./package.json").version') in $out" >&2
