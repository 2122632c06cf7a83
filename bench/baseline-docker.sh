#!/usr/bin/env bash
# The hand-written plain `docker` CLI baseline natproof's docker backend is measured against
# (npm run bench -- --docker): the seed's three-network router (scenarios/dmz-three-network.yaml)
# as three internal Docker networks with fixed subnets, a router container on all three with the
# hairpin rules loaded by iptables-restore inside it, the web server, the Internet, DMZ and
# trusted clients, tcpdump in the router, one HTTP probe from each client, the checks a person
# would make, and teardown. The same kernel work as
# `natproof run scenarios/dmz-three-network.yaml --ruleset hairpin --backend docker`, with none of
# its evidence: the least a correct tool has to do on a Docker engine.
#
# It uses natproof's own router image (ip, iptables, tcpdump, node, bash), so no registry is
# needed, but natproof must have built it once. The seed's addresses are moved to 10.231.1-3.0/24
# (the Internet client to 10.231.9.7/32): Docker allows each subnet once per engine, and natproof
# runs (or tests) on the same engine use the seed's own. Names are npbd-<pid>-*, never natproof's
# np-*. The one thing added to the Docker host, an ACCEPT per bridge in DOCKER-USER (Docker's
# isolation rules would drop traffic routed through the router container), is removed again.
# Traffic stays between the containers made here: the networks are internal, the bridges take
# no address.
#
# Usage (root; `natproof run <scenario> --backend docker` has built natproof's images once):
#   bench/baseline-docker.sh [WORKDIR]   exit 0 when every check holds.
set -euo pipefail

tag="npbd-$$"
router="$tag-router" web="$tag-web" inet="$tag-inet" dmzc="$tag-dmzc" trusted="$tag-trusted"
containers=("$router" "$web" "$inet" "$dmzc" "$trusted")
networks=("$tag-internet" "$tag-dmz" "$tag-trusted")
# IFNAMSIZ: at most 15 characters, so the bridges are named apart from the networks.
bridges=("npbd$$-1" "npbd$$-2" "npbd$$-3")
keep="${1:-}"
work="${keep:-$(mktemp -d)}"
pids=()
made_networks=()
accepted=false

# Every docker call is bounded: a wedged engine fails the script, it never hangs it.
dk() { timeout 60 docker "$@"; }

# One iptables-restore for the three accepts, inserted (-I) or deleted (-D), tagged with this run.
accepts() {
  {
    echo '*filter'
    for br in "${bridges[@]}"; do
      echo "$1 DOCKER-USER ${2:-} -i $br -o $br -m comment --comment $tag -j ACCEPT"
    done
    echo COMMIT
  } | iptables-restore -w 5 --noflush
}

teardown() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  dk rm -f "${containers[@]}" >/dev/null 2>&1 || true
  ((${#made_networks[@]} == 0)) || dk network rm "${made_networks[@]}" >/dev/null 2>&1 || true
  ! $accepted || accepts -D || true
  [[ -n "$keep" ]] || rm -rf "$work"
}
trap teardown EXIT

fail() {
  echo "baseline-docker: $*" >&2
  exit 1
}

# Polls `check` every 10 ms for at most 10 s (1000 tries): every wait here is bounded.
wait_for() {
  local what="$1"
  shift
  for _ in $(seq 1000); do
    "$@" && return 0
    sleep 0.01
  done
  fail "$what did not happen within 10 s"
}

image=$(dk images --filter label=natproof.image=router --format '{{.Repository}}:{{.Tag}}' | head -n 1)
[[ -n "$image" ]] || fail "no natproof router image on this engine: run natproof once with --backend docker"

# --- topology ---------------------------------------------------------------------------------
# Internal networks at fixed subnets. Docker insists on a gateway address: .253, which nothing
# else uses, and inhibit_ipv4 keeps it off the bridge, so the Docker host takes no part.
for i in 1 2 3; do
  dk network create --internal --subnet "10.231.$i.0/24" --gateway "10.231.$i.253" \
    -o "com.docker.network.bridge.name=${bridges[i - 1]}" -o com.docker.network.bridge.inhibit_ipv4=true \
    --label "npbd.pid=$$" "${networks[i - 1]}" >/dev/null
  made_networks+=("${networks[i - 1]}")
done
accepted=true
accepts -I 1

# The router: created on the Internet network, connected to the other two before it starts.
dk create --name "$router" --hostname router --label "npbd.pid=$$" --cap-add NET_ADMIN --cap-add NET_RAW \
  --network "${networks[0]}" --ip 10.231.1.254 \
  --sysctl net.ipv4.ip_forward=1 --sysctl net.ipv4.conf.all.rp_filter=0 --sysctl net.ipv4.conf.default.rp_filter=0 \
  "$image" sleep infinity >/dev/null
dk network connect --ip 10.231.2.254 "${networks[1]}" "$router"
dk network connect --ip 10.231.3.254 "${networks[2]}" "$router"
dk start "$router" >/dev/null

# A host: its own routes (and a remote client its own address) set by its first command, which
# then marks it ready and idles (or, for the web server, serves).
host() { # name network address command
  dk run -d --name "$1" --hostname "$1" --label "npbd.pid=$$" --cap-add NET_ADMIN --network "$2" --ip "$3" "$image" bash -c "$4" >/dev/null
}
idle='touch /run/ready && exec sleep infinity'
# node is in natproof's image: a server that logs each request's source address.
server='require("node:http").createServer((req, res) => { console.log(req.socket.remoteAddress); res.end("ok\n"); }).listen(80, "0.0.0.0", () => console.log("listening"));'
host "$web" "${networks[1]}" 10.231.2.1 "ip route replace default via 10.231.2.254 && exec node -e '$server'"
host "$inet" "${networks[0]}" 10.231.1.200 \
  "ip addr flush dev eth0 && ip addr add 10.231.9.7/32 dev eth0 && ip route add default via 10.231.1.254 dev eth0 onlink && $idle"
host "$dmzc" "${networks[1]}" 10.231.2.2 "ip route replace default via 10.231.2.254 && $idle"
host "$trusted" "${networks[2]}" 10.231.3.2 "ip route replace default via 10.231.3.254 && $idle"

# --- rules: the seed's hairpin rule set, and the router's default route out of its Internet leg
dk exec -i "$router" bash -c 'set -e
  ip route replace default dev "$(ip -o -4 addr show | awk "\$4 == \"10.231.1.254/24\" { print \$2 }")"
  iptables-restore' <<EOF
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.231.1.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.231.2.1
-A PREROUTING -d 10.231.2.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.231.2.1
-A PREROUTING -d 10.231.3.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.231.2.1
-A POSTROUTING -s 10.231.2.0/24 -d 10.231.2.0/24 -m conntrack --ctstate DNAT -j SNAT --to-source 10.231.2.254
-A POSTROUTING -s 10.231.3.0/24 -d 10.231.3.0/24 -m conntrack --ctstate DNAT -j SNAT --to-source 10.231.3.254
COMMIT
EOF

# --- server and capture -----------------------------------------------------------------------
dk logs -f "$web" >"$work/server.log" 2>&1 &
pids+=($!)
dk exec "$router" tcpdump -i any -nn -s 2048 --immediate-mode -U -w /tmp/router.pcap 2>"$work/tcpdump.err" &
pids+=($!)
wait_for "the web server listening" grep -qx listening "$work/server.log"
wait_for "tcpdump listening" grep -q "listening on" "$work/tcpdump.err"

# --- probes -----------------------------------------------------------------------------------
# The HTTP status of GET http://10.231.1.254/ from a client, once its own set-up is done (bounded).
probe() {
  dk exec "$1" bash -c 'for _ in $(seq 500); do [[ -e /run/ready ]] && break; sleep 0.01; done
    timeout 3 bash -c "exec 3<>/dev/tcp/10.231.1.254/80 && printf \"GET / HTTP/1.0\\r\\n\\r\\n\" >&3 && head -n 1 <&3"' || true
}
for c in "$inet" "$dmzc" "$trusted"; do
  status=$(probe "$c")
  [[ "$status" == "HTTP/1.1 200 OK"* ]] || fail "probe from $c: status line '$status', expected 200"
done

# --- checks -----------------------------------------------------------------------------------
# The server saw the Internet client as itself, the DMZ client as the router (hairpin SNAT),
# the trusted client as itself.
for seen in 10.231.9.7 10.231.2.254 10.231.3.2; do
  wait_for "the server logging $seen" grep -qx "$seen" "$work/server.log"
done
# The router forwarded the DMZ client's request SNATed and DNATed: stop the capture (SIGINT
# flushes it), bounded, and read it in the router.
packets=$(dk exec "$router" bash -c 'pkill -INT -x tcpdump
  for _ in $(seq 500); do pgrep -x tcpdump >/dev/null || break; sleep 0.01; done
  tcpdump -r /tmp/router.pcap -nn 2>/dev/null')
grep -q '10\.231\.2\.254\.[0-9]* > 10\.231\.2\.1\.80: Flags \[S\]' <<<"$packets" || fail "the capture has no SNATed SYN to the server"
echo "baseline-docker: 3 probes passed"
