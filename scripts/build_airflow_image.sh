#!/usr/bin/env bash
# Build the images docker-compose.yaml runs, offline (no image registry; pip and apt on the host only):
#   hyperai/airflow:3.3.2      FROM hyperai/base:bookworm-1 + wheels downloaded/built on the host
#   hyperai/postgres:15        debootstrap'ed bookworm with postgresql-15
#   hyperai/redis:7            debootstrap'ed bookworm with redis-server (the `celery` profile)
# Usage: scripts/build_airflow_image.sh [--force]
# Env: HYPERAI_IMAGE_CACHE (default /var/cache/hyperai-images), DEBIAN_MIRROR.
set -euo pipefail
cd "$(dirname "$0")/.."
FORCE=0; [ "${1:-}" = "--force" ] && FORCE=1
CACHE_DIR="${HYPERAI_IMAGE_CACHE:-/var/cache/hyperai-images}"
PY="${PYTHON:-/tmp/venv/bin/python}"
export DOCKER_BUILDKIT=0
log() { printf '[build_airflow_image] %s\n' "$*" >&2; }
exists() { [ "$FORCE" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }
mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null \
        || echo "http://deb.debian.org/debian"
}
mkdir -p "$CACHE_DIR"

rootfs_image() {  # tag packages command...
    local tag=$1 packages=$2; shift 2
    if exists "$tag"; then log "$tag exists"; return; fi
    command -v debootstrap >/dev/null || { log "ERROR: apt-get install debootstrap"; exit 1; }
    local rootfs="$CACHE_DIR/rootfs-${tag//[:\/]/-}"
    if [ ! -x "$rootfs/usr/bin/env" ]; then
        log "debootstrap $tag ($packages)"
        rm -rf "$rootfs"
        debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$(mirror)" \
            >"$CACHE_DIR/debootstrap-${tag//[:\/]/-}.log" 2>&1
    fi
    log "docker import -> $tag"
    tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "CMD $*" - "$tag" >/dev/null
}

rootfs_image hyperai/postgres:15 postgresql-15 '["/bin/sh","-c","echo use the compose command"]'
rootfs_image hyperai/redis:7 redis-server '["redis-server","--protected-mode","no"]'

if exists hyperai/airflow:3.3.2; then log "hyperai/airflow:3.3.2 exists"; exit 0; fi
# celery 5.7 dropped celery.backends.database.retry, which apache-airflow-providers-celery 3.26 imports.
CELERY_PIN="celery>=5.5,<5.7"
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp deploy/airflow/Dockerfile "$context/"
mkdir -p "$CACHE_DIR/airflow-wheels"
log "pip wheel (host, cached in $CACHE_DIR/airflow-wheels)"
"$PY" -m pip wheel -q --wheel-dir "$CACHE_DIR/airflow-wheels" \
    "apache-airflow[celery,postgres]==3.3.2" apache-airflow-providers-docker "$CELERY_PIN"
# The image's python is Debian's 3.11.2: resolve again for it (markers like python_full_version differ
# from the host's), taking sdist-only packages from the wheels just built.
"$PY" -m pip download -q --dest "$CACHE_DIR/airflow-wheels" --find-links "$CACHE_DIR/airflow-wheels" \
    --only-binary=:all: --python-version 3.11.2 --implementation cp --abi cp311 --abi abi3 --abi none \
    $(for minor in $(seq 5 36); do printf -- '--platform manylinux_2_%s_x86_64 ' "$minor"; done) \
    --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64 \
    --platform linux_x86_64 --platform any \
    "apache-airflow[celery,postgres]==3.3.2" apache-airflow-providers-docker "$CELERY_PIN" \
    "async-timeout>=4.0.3"  # pip does not apply --python-version to python_full_version markers (redis)
rm -f "$CACHE_DIR"/airflow-wheels/hyperai_provider-*.whl
"$PY" -m pip wheel -q --no-deps --wheel-dir "$CACHE_DIR/airflow-wheels" .
cp -al "$CACHE_DIR/airflow-wheels" "$context/wheels" 2>/dev/null || cp -a "$CACHE_DIR/airflow-wheels" "$context/wheels"
log "docker build -> hyperai/airflow:3.3.2"
docker build -q -t hyperai/airflow:3.3.2 "$context" >/dev/null
log "done"
