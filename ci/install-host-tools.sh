#!/usr/bin/env bash
# Installs the host tools natproof drives, from Debian's packages. Run as root.
# The netns backend needs only these and Node.js >= 20.18.
set -euo pipefail

# git: `natproof diff --git` reads a rules file as committed, and its tests make a repository.
# curl: the hand-written baseline natproof is benchmarked against (bench/baseline-seed.sh) probes with it.
packages=(iproute2 iptables nftables conntrack tcpdump procps git curl)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Node.js: natproof and its probes run on the machine's node (>= 20.18, package.json engines).
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=18)?0:1)' 2>/dev/null; then
  echo "natproof needs Node.js >= 20.18 (found: $(node --version 2>/dev/null || echo none))." >&2
  echo "Debian 12's nodejs package is 18; install Node 20 or 22 from nodejs.org or your distribution's backports." >&2
  exit 1
fi
echo "host tools ready: $(ip -V), $(iptables --version), $(nft --version), $(conntrack --version 2>&1 | head -1), $(tcpdump --version 2>&1 | head -1), node $(node --version)"
