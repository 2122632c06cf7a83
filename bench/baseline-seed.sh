#!/usr/bin/env bash
# The hand-written baseline natproof is measured against (npm run bench): the seed's three-network
# router (scenarios/dmz-three-network.yaml) built with `ip` in namespaces, the hairpin rules loaded
# with iptables-restore inside the router, tcpdump on the router, one HTTP probe with curl from each
# of the Internet, DMZ and trusted clients, the checks a person would make, and teardown.
# The same kernel work as `natproof run scenarios/dmz-three-network.yaml --ruleset hairpin`, with
# none of its evidence: the least a correct tool has to do. Traffic stays between the namespaces
# made here; nothing is attached to this machine's own namespace.
#
# Usage (root): bench/baseline-seed.sh [WORKDIR]   exit 0 when every check holds.
set -euo pipefail

# This run's namespaces: npb-<pid>-<node>, never natproof's np-<runid>- names.
tag="npb-$$"
router="$tag-router" switch="$tag-dmz" web="$tag-web" inet="$tag-inet" dmzc="$tag-dmzc" trusted="$tag-trusted"
all=("$router" "$switch" "$web" "$inet" "$dmzc" "$trusted")
keep="${1:-}"
work="${keep:-$(mktemp -d)}"
pids=()

teardown() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  printf 'netns del %s\n' "${all[@]}" | ip -force -batch - 2>/dev/null || true
  [[ -n "$keep" ]] || rm -rf "$work"
}
trap teardown EXIT

fail() {
  echo "baseline-seed: $*" >&2
  exit 1
}

# Polls `check` every 10 ms for at most 5 s (500 tries): every wait here is bounded.
wait_for() {
  local what="$1"
  shift
  for _ in $(seq 500); do
    "$@" && return 0
    sleep 0.01
  done
  fail "$what did not happen within 5 s"
}

# --- topology ---------------------------------------------------------------------------------
printf 'netns add %s\n' "${all[@]}" | ip -batch -
ip -n "$router" link add eth1 type veth peer name eth0 netns "$inet"
ip -n "$router" link add eth2 type veth peer name p-router netns "$switch"
ip -n "$router" link add eth3 type veth peer name eth0 netns "$trusted"
ip -n "$web" link add eth0 type veth peer name p-web netns "$switch"
ip -n "$dmzc" link add eth0 type veth peer name p-dmzc netns "$switch"

ip netns exec "$router" sysctl -q -w net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
# The DMZ switch is a plain L2 bridge: no netfilter on bridged frames, no IGMP snooping noise.
ip netns exec "$switch" sysctl -q -e -w net.bridge.bridge-nf-call-iptables=0
ip -n "$switch" -batch - <<EOF
link add br0 type bridge mcast_snooping 0
link set p-router master br0
link set p-web master br0
link set p-dmzc master br0
link set p-router up
link set p-web up
link set p-dmzc up
link set br0 up
EOF
ip -n "$router" -batch - <<EOF
addr add 100.0.0.254/24 dev eth1
addr add 172.16.0.254/24 dev eth2
addr add 192.168.0.254/24 dev eth3
link set lo up
link set eth1 up
link set eth2 up
link set eth3 up
route add default dev eth1
EOF
host() { # ns address/prefix gateway [onlink]
  ip -n "$1" -batch - <<EOF
addr add $2 dev eth0
link set lo up
link set eth0 up
route add default via $3 dev eth0 $4
EOF
}
host "$inet" 123.45.6.7/32 100.0.0.254 onlink
host "$web" 172.16.0.1/24 172.16.0.254 ""
host "$dmzc" 172.16.0.2/24 172.16.0.254 ""
host "$trusted" 192.168.0.2/24 192.168.0.254 ""
# A bridge drops what it forwards until it is UP.
wait_for "the DMZ bridge coming up" bash -c "ip -n '$switch' link show br0 | grep -q 'state UP'"

# --- rules: the seed's hairpin rule set -------------------------------------------------------
ip netns exec "$router" iptables-restore <<EOF
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 100.0.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1
-A PREROUTING -d 172.16.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1
-A PREROUTING -d 192.168.0.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 172.16.0.1
-A POSTROUTING -s 172.16.0.0/24 -d 172.16.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to-source 172.16.0.254
-A POSTROUTING -s 192.168.0.0/24 -d 192.168.0.0/24 -m conntrack --ctstate DNAT -j SNAT --to-source 192.168.0.254
COMMIT
EOF

# --- server and capture -----------------------------------------------------------------------
# node is natproof's own prerequisite: a server that logs each request's source address.
ip netns exec "$web" node -e '
  require("node:http").createServer((req, res) => {
    console.log(req.socket.remoteAddress);
    res.end("ok\n");
  }).listen(80, "0.0.0.0");
' >"$work/server.log" 2>&1 &
pids+=($!)
ip netns exec "$router" tcpdump -i any -nn -s 2048 --immediate-mode -U -w "$work/router.pcap" 2>"$work/tcpdump.err" &
pids+=($!)
wait_for "the web server listening" bash -c "ip netns exec '$web' ss -Hltn 'sport = :80' | grep -q LISTEN"
wait_for "tcpdump listening" grep -q "listening on" "$work/tcpdump.err"

# --- probes -----------------------------------------------------------------------------------
probe() { # ns: the HTTP status of GET http://100.0.0.254/, from ns
  ip netns exec "$1" curl -sS --max-time 3 -o /dev/null -w '%{http_code}' http://100.0.0.254/ || true
}
for ns in "$inet" "$dmzc" "$trusted"; do
  status=$(probe "$ns")
  [[ "$status" == 200 ]] || fail "probe from $ns: HTTP status '$status', expected 200"
done

# --- checks -----------------------------------------------------------------------------------
kill -INT "${pids[1]}"
wait "${pids[1]}" || true
# The server saw the Internet client as itself, the DMZ client as the router (hairpin SNAT),
# the trusted client as itself.
for seen in 123.45.6.7 172.16.0.254 192.168.0.2; do
  grep -qx "$seen" "$work/server.log" || fail "the server never saw $seen: $(tr '\n' ' ' <"$work/server.log")"
done
# The router forwarded the DMZ client's request SNATed and DNATed.
packets=$(tcpdump -r "$work/router.pcap" -nn 2>/dev/null)
grep -q '172\.16\.0\.254\.[0-9]* > 172\.16\.0\.1\.80: Flags \[S\]' <<<"$packets" || fail "the capture has no SNATed SYN to the server"
echo "baseline-seed: 3 probes passed"
