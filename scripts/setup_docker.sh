#!/usr/bin/env bash
# Make a Docker engine available on this machine (idempotent).
#   - exits 0 at once when `docker info` already answers;
#   - otherwise installs docker.io (+ debootstrap, used by build_images.sh) with apt-get
#     when missing, starts dockerd in the background and waits for it to answer.
# Env: DOCKERD_LOG (default /var/log/dockerd.log), DOCKERD_WAIT_S (default 30).
set -euo pipefail

log() { printf '[setup_docker] %s\n' "$*" >&2; }

docker_ok() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

if docker_ok; then
    log "docker engine already answering ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        log "not root and no sudo: cannot install or start dockerd"; exit 1
    fi
fi

# --- install what is missing ------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    # another apt may be running (e.g. a parallel setup): wait for the dpkg lock
    for _ in $(seq 1 120); do
        if command -v fuser >/dev/null 2>&1 && $SUDO fuser /var/lib/dpkg/lock-frontend >/dev/null 2>&1; then
            sleep 2
        else
            break
        fi
    done
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v dockerd >/dev/null 2>&1 || { log "dockerd still missing after install"; exit 1; }

# --- start the engine -------------------------------------------------------------------
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
if ! { : >>"$DOCKERD_LOG"; } 2>/dev/null; then DOCKERD_LOG=/tmp/dockerd.log; fi
WAIT_S="${DOCKERD_WAIT_S:-30}"

if pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd already running (pid $(pgrep -x dockerd | head -1)); waiting for it"
else
    # a stale pid file from a killed dockerd stops a new one from starting
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null; then
        $SUDO rm -f /var/run/docker.pid
    fi
    log "starting dockerd (log: $DOCKERD_LOG)"
    # containerd is started by dockerd itself when no system containerd runs
    $SUDO setsid dockerd >>"$DOCKERD_LOG" 2>&1 < /dev/null &
fi

t0=$SECONDS
until $SUDO docker info >/dev/null 2>&1; do
    if [ $((SECONDS - t0)) -ge "$WAIT_S" ]; then
        log "ERROR: docker engine did not answer within ${WAIT_S}s; last lines of $DOCKERD_LOG:"
        tail -n 30 "$DOCKERD_LOG" >&2 || true
        exit 1
    fi
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        log "ERROR: dockerd exited; last lines of $DOCKERD_LOG:"
        tail -n 30 "$DOCKERD_LOG" >&2 || true
        exit 1
    fi
    sleep 0.5
done

# the CLI on PATH may be newer than the engine (e.g. a v28 CLI against a 20.10 engine):
# modern CLIs negotiate the API version, so check rather than assume.
if ! docker info >/dev/null 2>&1; then
    log "ERROR: engine answers but 'docker' on PATH ($(command -v docker)) cannot talk to it:"
    docker info 2>&1 | tail -n 5 >&2 || true
    exit 1
fi
log "docker engine up in $((SECONDS - t0))s: server $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), client $(docker version --format '{{.Client.Version}}') at $(command -v docker)"
