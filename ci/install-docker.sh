#!/usr/bin/env bash
# Makes a Docker engine available for natproof's docker backend, without any container
# registry: installs Debian's docker.io if dockerd is missing, starts dockerd if none answers,
# and creates the base image the Dockerfiles start FROM (debian:bookworm-slim) with debootstrap
# when the engine does not have it. Each step is skipped when its result is already there, so
# a machine that can pull the image, or already runs Docker, is left as it is. Run as root.
set -euo pipefail

BASE_IMAGE=${NATPROOF_BASE_IMAGE:-debian:bookworm-slim}
SUITE=bookworm
DOCKERD_LOG=${NATPROOF_DOCKERD_LOG:-/var/log/natproof-dockerd.log}
START_TIMEOUT_S=60

log() { echo "install-docker: $*"; }

# 1. Packages. `docker` alone is not enough: a client binary without an engine is common.
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if ((${#need[@]} > 0)); then
  log "installing ${need[*]}"
  apt-get update -qq
  # policy-rc.d-less machines without systemd: the package's own start attempt may fail; we
  # start dockerd ourselves below.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# 2. The engine. DOCKER_HOST pointing elsewhere means someone else runs it.
engine_up() { timeout 10 docker info >/dev/null 2>&1; }
if ! engine_up; then
  if [[ -n "${DOCKER_HOST:-}" && "${DOCKER_HOST}" != unix:///var/run/docker.sock ]]; then
    echo "install-docker: DOCKER_HOST=${DOCKER_HOST} does not answer; start that engine" >&2
    exit 1
  fi
  # A dockerd killed with its containerd (as everything is at the end of a CI session) leaves
  # pid files behind. A new dockerd refuses to start while its pid is a process, and waits for
  # a containerd that is only a zombie or someone else's reused pid: remove such files.
  for entry in /var/run/docker.pid:dockerd /var/run/docker/containerd/containerd.pid:containerd; do
    pidfile=${entry%%:*} name=${entry##*:}
    [[ -f "${pidfile}" ]] || continue
    old=$(cat "${pidfile}")
    if [[ "$(cat "/proc/${old}/comm" 2>/dev/null)" != "${name}" ]] || grep -q '^State:[[:space:]]*Z' "/proc/${old}/status" 2>/dev/null; then
      log "removing the stale ${pidfile} (pid ${old} is not a running ${name})"
      rm -f "${pidfile}"
    fi
  done
  log "starting dockerd (log: ${DOCKERD_LOG})"
  # setsid: dockerd must outlive this script and not share its process group.
  setsid dockerd >>"${DOCKERD_LOG}" 2>&1 </dev/null &
  dockerd_pid=$!
  for ((i = 0; i < START_TIMEOUT_S * 4; i++)); do
    engine_up && break
    kill -0 "${dockerd_pid}" 2>/dev/null || break # it gave up: no point waiting
    sleep 0.25
  done
  if ! engine_up; then
    echo "install-docker: dockerd did not answer within ${START_TIMEOUT_S} s; last lines of ${DOCKERD_LOG}:" >&2
    tail -n 20 "${DOCKERD_LOG}" >&2 || true
    exit 1
  fi
fi

# 3. The base image, made locally when it cannot be pulled.
if ! docker image inspect "${BASE_IMAGE}" >/dev/null 2>&1; then
  # The Debian mirror apt already uses: deb822 .sources files first, then one-line lists.
  mirror=$(
    {
      cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
        /^URIs:/ { uri = $2 } /^Suites:/ { suites = $0 }
        /^$/ { if (uri != "" && suites !~ /-security/) print uri; uri = ""; suites = "" }
        END { if (uri != "" && suites !~ /-security/) print uri }'
      cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { if ($(i + 1) !~ /-security/) print $i; break } }'
    } | grep -v -e security -e '^$' | grep -i debian | head -n 1
  ) || true
  mirror=${mirror:-http://deb.debian.org/debian}
  dir=$(mktemp -d /var/tmp/natproof-rootfs.XXXXXX)
  trap 'rm -rf "${dir}"' EXIT
  log "building ${BASE_IMAGE} with debootstrap from ${mirror} (about a minute)"
  debootstrap --variant=minbase "${SUITE}" "${dir}" "${mirror}" >"${dir}.log" 2>&1 || {
    tail -n 20 "${dir}.log" >&2
    exit 1
  }
  rm -f "${dir}.log"
  # What the official slim image also leaves out: package lists and caches.
  rm -rf "${dir}"/var/lib/apt/lists/* "${dir}"/var/cache/apt/*.bin "${dir}"/var/cache/apt/archives/*.deb
  tar -C "${dir}" -c . | docker import --change 'CMD ["bash"]' - "${BASE_IMAGE}" >/dev/null
  log "imported ${BASE_IMAGE}"
fi
log "ready: $(docker version --format 'engine {{.Server.Version}}'), base image ${BASE_IMAGE}"
