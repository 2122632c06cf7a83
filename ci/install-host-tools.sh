#!/usr/bin/env bash
# Installs the host tools natproof drives, from Debian's packages. Run as root.
# The netns backend needs only these and Node.js >= 20.18.
set -euo pipefail

# git: `natproof diff --git` reads a rules file as committed, and its tests make a repository.
# curl: the hand-written baseline natproof is benchmarked against (bench/baseline-seed.sh) probes with it;
# with ca-certificates, install-node.sh downloads Node from the npm registry with it.
# util-linux: `natproof validate` runs the rule tools in a throwaway namespace with its unshare.
# perl-base (essential, so always there): the netns backend enters namespaces with its setns.
packages=(iproute2 iptables nftables conntrack tcpdump procps util-linux perl-base git curl ca-certificates)
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
# Debian 12's own is 18: install-node.sh brings a supported one from the npm registry, and
# leaves a good one alone.
bash "$(dirname "$0")/install-node.sh"
echo "host tools ready: $(ip -V), $(iptables --version), $(nft --version), $(conntrack --version 2>&1 | head -1), $(tcpdump --version 2>&1 | head -1), node $(node --version)"
