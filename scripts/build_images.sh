#!/usr/bin/env bash
# Build the project's Docker images offline (no image registry needed), cached by tag.
#
#   hyperai/base:bookworm-1     debootstrap'ed Debian bookworm (minbase) with python3, numpy,
#                               venv/pip, ca-certificates, procps; imported with `docker import`.
#   hyperai/jupyter:bookworm-1  FROM the base: JupyterLab (+ nbconvert, ipykernel) in the venv
#                               /opt/jupyter (system site packages visible, so numpy imports),
#                               installed from wheels downloaded on the host.
#   hyperai/pytorch:2.14-bookworm-1
#                               FROM the base: torch + torchvision (PyPI's Linux wheels, with the CUDA
#                               libraries they depend on: GPU when the container gets one, CPU
#                               otherwise), openbayestool and the scientific stack.
#   hyperai/tensorflow:2.21-bookworm-1
#                               FROM the base: tensorflow (CPU; PyPI's wheel brings no CUDA libraries
#                               without the and-cuda extra), openbayestool and the scientific stack.
#
# The framework images install into the system Python (/usr/local/lib/python3.11/dist-packages of
# Debian's /usr/bin/python3; Debian's numpy is removed, PEP 668's marker too so `pip install` works in
# a container) from wheels downloaded on the host, bind-mounted read-only into a `--network none`
# container and committed: no wheel, pip cache or build layer stays in the image.
#
# Usage: scripts/build_images.sh [--only base|jupyter|pytorch|tensorflow] [--force] [--no-cache] [--verify]
#   --force     rebuild images even when their tag exists (reuses the cached rootfs / wheels)
#   --no-cache  also re-run debootstrap and re-download the wheels (implies --force)
#   --verify    after building: run numpy in the base image, time `docker run --rm base true`
#               (median of 5), start JupyterLab and time until /api/status answers 200, and run a
#               tiny torch / Keras computation in the framework images
# Env: HYPERAI_IMAGE_CACHE (default /var/cache/hyperai-images), DEBIAN_MIRROR,
#      JUPYTER_PIP_SPECS (default "jupyterlab nbconvert ipykernel"),
#      PYTORCH_PIP_SPECS, TENSORFLOW_PIP_SPECS (defaults: the pinned versions below).
set -euo pipefail
shopt -s inherit_errexit   # keep -e inside $(...) too

BASE_TAG="hyperai/base:bookworm-1"
JUPYTER_TAG="hyperai/jupyter:bookworm-1"
SUITE="bookworm"
BASE_INCLUDE="python3,python3-numpy,python3-venv,python3-pip,ca-certificates,procps"
IMAGE_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CACHE_DIR="${HYPERAI_IMAGE_CACHE:-/var/cache/hyperai-images}"
JUPYTER_PIP_SPECS="${JUPYTER_PIP_SPECS:-jupyterlab nbconvert ipykernel}"
# The image's python is Debian bookworm's 3.11.2 (glibc 2.36): pin wheel selection to it.
PY_VERSION="3.11.2"
# pip does not widen a manylinux_2_X --platform to older glibc tags (only manylinux2014/2010 are
# widened), so name every glibc tag that bookworm's 2.36 can run: torch's wheels are manylinux_2_28.
WHEEL_PLATFORMS=()
for _glibc in $(seq 36 -1 17); do WHEEL_PLATFORMS+=("manylinux_2_${_glibc}_x86_64"); done
WHEEL_PLATFORMS+=(manylinux2014_x86_64 linux_x86_64)

# Framework images. Versions pinned to the newest that serve CPython 3.11 on x86_64 glibc 2.36 and that
# this machine's pip accepts (torch 2.15.0 exists on PyPI, but the workplace caps pip at torch<=2.14.1;
# 2.14.1, torchvision 0.29.1 and their CUDA 13 wheels also lie on local disk, which keeps a cold build
# short). Bump a version here (and the tag's version) to move; the tag is rebuilt when its specs change.
TORCH_VERSION="2.14.1"
TORCHVISION_VERSION="0.29.1"
TENSORFLOW_VERSION="2.21.0"
OPENBAYESTOOL_VERSION="0.3.2"
SCIENCE_SPECS="numpy pandas scikit-learn matplotlib pillow tqdm pyyaml"
PYTORCH_TAG="hyperai/pytorch:${TORCH_VERSION%.*}-bookworm-1"
TENSORFLOW_TAG="hyperai/tensorflow:${TENSORFLOW_VERSION%.*}-bookworm-1"
PYTORCH_PIP_SPECS="${PYTORCH_PIP_SPECS:-torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION openbayestool==$OPENBAYESTOOL_VERSION $SCIENCE_SPECS}"
TENSORFLOW_PIP_SPECS="${TENSORFLOW_PIP_SPECS:-tensorflow==$TENSORFLOW_VERSION openbayestool==$OPENBAYESTOOL_VERSION $SCIENCE_SPECS}"
SCIENCE_IMPORTS="import openbayestool, numpy, pandas, sklearn, matplotlib, PIL, tqdm, yaml"

ONLY="" FORCE=0 NOCACHE=0 VERIFY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --only) ONLY="${2:?--only needs base|jupyter|pytorch|tensorflow}"; shift 2 ;;
        --only=*) ONLY="${1#--only=}"; shift ;;
        --force) FORCE=1; shift ;;
        --no-cache) NOCACHE=1; FORCE=1; shift ;;
        --verify) VERIFY=1; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$ONLY" in
    ""|base|jupyter|pytorch|tensorflow) ;;
    *) echo "--only must be base, jupyter, pytorch or tensorflow" >&2; exit 2 ;;
esac

export DOCKER_BUILDKIT=0   # the v28 CLI here has no buildx plugin; the legacy builder is enough
T_ALL=$SECONDS
log() { printf '[build_images] %s\n' "$*" >&2; }
step_t0=0
step() { step_t0=$SECONDS; log "$*"; }
done_step() { log "  done in $((SECONDS - step_t0))s${1:+: $1}"; }
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_size() { docker image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1/1e6}'; }
image_label() { docker image inspect --format "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }

docker info >/dev/null 2>&1 || { log "ERROR: docker engine not reachable (run scripts/setup_docker.sh)"; exit 1; }
mkdir -p "$CACHE_DIR"

debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local m=""
    if [ -r /etc/apt/sources.list.d/debian.sources ]; then
        m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
        m=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

# ------------------------------------------------------------------------------------------
build_base() {
    if [ "$FORCE" = 0 ] && image_exists "$BASE_TAG"; then
        log "$BASE_TAG exists ($(image_size "$BASE_TAG")), skipping"; return
    fi
    # cache key: everything that changes the rootfs content (bump STRIP_V when stripping changes)
    local STRIP_V=1 key tarball
    key=$(printf '%s|%s|minbase|%s' "$SUITE" "$BASE_INCLUDE" "$STRIP_V" | sha256sum | cut -c1-12)
    tarball="$CACHE_DIR/base-$SUITE-$key.rootfs.tar"

    if [ "$NOCACHE" = 1 ] || [ ! -s "$tarball" ]; then
        command -v debootstrap >/dev/null 2>&1 || { log "ERROR: debootstrap missing (apt-get install debootstrap)"; exit 1; }
        local mirror rootfs
        mirror=$(debian_mirror)
        rootfs=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
        # shellcheck disable=SC2064
        trap "cleanup_rootfs '$rootfs'" EXIT
        step "debootstrap --variant=minbase $SUITE ($BASE_INCLUDE) from $mirror"
        if ! debootstrap --variant=minbase --include="$BASE_INCLUDE" "$SUITE" "$rootfs" "$mirror" \
                >"$CACHE_DIR/debootstrap.log" 2>&1; then
            log "ERROR: debootstrap failed; last lines of $CACHE_DIR/debootstrap.log:"
            tail -n 20 "$CACHE_DIR/debootstrap.log" >&2; exit 1
        fi
        done_step
        step "stripping apt caches, docs, man pages, locales"
        local before; before=$(du -sm "$rootfs" | cut -f1)
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
               "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/debconf/*-old \
               "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
               "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian/* \
               "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/tmp/* "$rootfs"/root/.cache
        # docs go, license files stay
        find "$rootfs"/usr/share/doc -mindepth 1 -not -type d -not -name copyright -delete
        find "$rootfs"/usr/share/doc -mindepth 1 -type d -empty -delete
        # keep future `apt-get install` inside containers from dragging docs/locales back
        mkdir -p "$rootfs"/etc/dpkg/dpkg.cfg.d
        printf '%s\n' 'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
            'path-exclude=/usr/share/locale/*' 'path-exclude=/usr/share/doc/*' \
            'path-include=/usr/share/doc/*/copyright' >"$rootfs"/etc/dpkg/dpkg.cfg.d/01-hyperai-nodoc
        : >"$rootfs"/etc/hostname; rm -f "$rootfs"/etc/resolv.conf
        done_step "$before MB -> $(du -sm "$rootfs" | cut -f1) MB"
        step "caching rootfs tarball $tarball"
        tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
        mv -f "$tarball.tmp" "$tarball"
        cleanup_rootfs "$rootfs"; trap - EXIT
        done_step
    else
        log "using cached rootfs $tarball"
    fi

    local old_id; old_id=$(docker image inspect --format '{{.Id}}' "$BASE_TAG" 2>/dev/null || true)
    step "docker import -> $BASE_TAG"
    docker import \
        --change "ENV PATH=$IMAGE_PATH" \
        --change "ENV LANG=C.UTF-8" \
        --change "WORKDIR /" \
        --change 'CMD ["python3"]' \
        -m "debootstrap minbase $SUITE + $BASE_INCLUDE" \
        "$tarball" "$BASE_TAG" >/dev/null
    drop_old_image "$old_id" "$BASE_TAG"
    done_step "$(image_size "$BASE_TAG")"
    docker run --rm "$BASE_TAG" python3 -c 'import numpy, ssl, venv' \
        || { log "ERROR: smoke test of $BASE_TAG failed"; exit 1; }
}

# after a forced rebuild, remove the image the tag pointed to before (if nothing uses it)
drop_old_image() {
    local old_id="$1" tag="$2"
    [ -n "$old_id" ] || return 0
    [ "$old_id" = "$(docker image inspect --format '{{.Id}}' "$tag")" ] && return 0
    docker rmi "$old_id" >/dev/null 2>&1 || true
}

cleanup_rootfs() {
    local r="$1"
    [ -d "$r" ] || return 0
    # debootstrap mounts /proc, /sys (and maybe /dev/pts) in the target; never rm -rf through a mount
    local m
    for m in $(awk -v r="$r" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    if awk -v r="$r" 'index($2, r) == 1 {found=1} END {exit !found}' /proc/mounts; then
        log "WARNING: mounts remain under $r; not removing it"; return 0
    fi
    rm -rf "$r"
}

# ------------------------------------------------------------------------------------------
# download_wheels NAME SPECS: print the cache folder holding the wheels of SPECS (and all their
# dependencies) for the image's CPython, downloading them on the host when not cached yet.
download_wheels() {
    local name="$1" specs="$2" key wheels
    key=$(printf '%s|%s|%s' "$specs" "$PY_VERSION" "${WHEEL_PLATFORMS[*]}" | sha256sum | cut -c1-12)
    wheels="$CACHE_DIR/$name-wheels-$key"
    if [ "$NOCACHE" = 1 ] || [ ! -f "$wheels/.complete" ]; then
        rm -rf "$wheels"; mkdir -p "$wheels"
        step "pip download ($specs) for CPython $PY_VERSION"
        local plat_args=() p pybin logfile="$CACHE_DIR/$name-pip-download.log"
        for p in "${WHEEL_PLATFORMS[@]}"; do plat_args+=(--platform "$p"); done
        pybin=$(command -v python3 || command -v python)
        # shellcheck disable=SC2086
        if ! "$pybin" -m pip download -q --disable-pip-version-check --no-cache-dir \
                --python-version "$PY_VERSION" --implementation cp --only-binary=:all: \
                "${plat_args[@]}" -d "$wheels" $specs >"$logfile" 2>&1; then
            log "ERROR: pip download failed; last lines of $logfile:"
            grep -v 'is ignored: it is neither' "$logfile" | tail -n 20 >&2
            rm -rf "$wheels"; exit 1
        fi
        touch "$wheels/.complete"
        done_step "$(find "$wheels" -name '*.whl' | wc -l) wheels, $(du -sm "$wheels" | cut -f1) MB"
    else
        log "using cached wheels $wheels ($(du -sm "$wheels" | cut -f1) MB)"
    fi
    # drop the wheels of older specs of this image: only the current set is worth its disk space
    local other
    for other in "$CACHE_DIR/$name"-wheels-*; do
        [ "$other" = "$wheels" ] || [ ! -d "$other" ] || { log "removing stale $other"; rm -rf "$other"; }
    done
    echo "$wheels"
}

# ------------------------------------------------------------------------------------------
build_jupyter() {
    image_exists "$BASE_TAG" || { log "$JUPYTER_TAG needs $BASE_TAG: building it first"; build_base; }
    local base_id; base_id=$(docker image inspect --format '{{.Id}}' "$BASE_TAG")
    if [ "$FORCE" = 0 ] && image_exists "$JUPYTER_TAG"; then
        if [ "$(docker image inspect --format '{{index .Config.Labels "org.hyperai.base-id"}}' "$JUPYTER_TAG")" = "$base_id" ]; then
            log "$JUPYTER_TAG exists ($(image_size "$JUPYTER_TAG")), skipping"; return
        fi
        log "$JUPYTER_TAG was built from another $BASE_TAG: rebuilding"
    fi
    local old_id; old_id=$(docker image inspect --format '{{.Id}}' "$JUPYTER_TAG" 2>/dev/null || true)

    local wheels; wheels=$(download_wheels jupyter "$JUPYTER_PIP_SPECS")

    local ctx; ctx=$(mktemp -d)
    cp -a "$wheels" "$ctx/wheels"
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE_TAG
COPY wheels /wheels
RUN python3 -m venv --system-site-packages /opt/jupyter \\
 && /opt/jupyter/bin/pip install -q --no-cache-dir --no-index --find-links /wheels \\
        --disable-pip-version-check $JUPYTER_PIP_SPECS \\
 && rm -rf /wheels /root/.cache \\
 && /opt/jupyter/bin/jupyter lab --version >/dev/null \\
 && /opt/jupyter/bin/jupyter nbconvert --version >/dev/null \\
 && /opt/jupyter/bin/python -c 'import numpy, ipykernel'
ENV PATH=/opt/jupyter/bin:$IMAGE_PATH
WORKDIR /
LABEL org.hyperai.base-id="$base_id"
EXPOSE 8888
CMD ["jupyter", "lab", "--allow-root", "--ip=0.0.0.0", "--no-browser"]
DOCKERFILE
    step "docker build -> $JUPYTER_TAG"
    if ! docker build -q -t "$JUPYTER_TAG" "$ctx" >"$CACHE_DIR/jupyter-build.log" 2>&1; then
        log "ERROR: docker build failed; last lines of $CACHE_DIR/jupyter-build.log:"
        tail -n 30 "$CACHE_DIR/jupyter-build.log" >&2; rm -rf "$ctx"; exit 1
    fi
    rm -rf "$ctx"
    drop_old_image "$old_id" "$JUPYTER_TAG"
    done_step "$(image_size "$JUPYTER_TAG")"
}

# ------------------------------------------------------------------------------------------
# Framework images: the base's system Python gets the packages; built with `docker run` (wheels
# bind-mounted read-only, no network) + `docker commit`, so the image is one layer on the base with
# no wheels in it (a Dockerfile COPY would keep them in a layer; the legacy builder has no RUN --mount).
FRAMEWORK_RECIPE_V=1   # bump when the install recipe below changes: cached tags then rebuild

framework_install_script() {  # $1 = pip specs, $2 = python import check
    cat <<SCRIPT
set -eu
dpkg --purge python3-numpy >/dev/null   # one numpy: the one the wheels were resolved with
rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED   # a container's own 'pip install' goes to /usr/local
pip3 install -q --no-cache-dir --no-index --find-links /wheels --disable-pip-version-check \
    --progress-bar off $1
pip3 check
ln -sf /usr/bin/python3 /usr/local/bin/python
mkdir -p /usr/local/share/hyperai
pip3 list --format=freeze --disable-pip-version-check >/usr/local/share/hyperai/packages.txt
cd /tmp && python3 -c '$2'   # imports (also builds matplotlib's font cache once, here)
rm -rf /root/.cache/pip /tmp/* /var/tmp/*
SCRIPT
}

# build_framework NAME TAG SPECS IMPORT_CHECK DESCRIPTION
build_framework() {
    local name="$1" tag="$2" specs="$3" check="$4" what="$5"
    image_exists "$BASE_TAG" || { log "$tag needs $BASE_TAG: building it first"; build_base; }
    local base_id key
    base_id=$(docker image inspect --format '{{.Id}}' "$BASE_TAG")
    key=$(printf '%s|%s|%s|%s' "$specs" "$PY_VERSION" "${WHEEL_PLATFORMS[*]}" "$FRAMEWORK_RECIPE_V" \
        | sha256sum | cut -c1-12)
    if [ "$FORCE" = 0 ] && image_exists "$tag"; then
        if [ "$(image_label "$tag" org.hyperai.base-id)" = "$base_id" ] \
                && [ "$(image_label "$tag" org.hyperai.specs-key)" = "$key" ]; then
            log "$tag exists ($(image_size "$tag")), skipping"; return
        fi
        log "$tag was built from another $BASE_TAG or other package specs: rebuilding"
    fi
    local t0=$SECONDS old_id wheels
    old_id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    wheels=$(download_wheels "$name" "$specs")

    local cname="hyperai-image-build-$name-$$" logfile="$CACHE_DIR/$name-build.log"
    docker rm -f "$cname" >/dev/null 2>&1 || true
    # shellcheck disable=SC2064
    trap "docker rm -f '$cname' >/dev/null 2>&1 || true" EXIT
    step "pip install (offline, --network none) in a container FROM $BASE_TAG"
    if ! docker run --name "$cname" --network none --mount "type=bind,source=$wheels,target=/wheels,readonly" \
            "$BASE_TAG" /bin/sh -c "$(framework_install_script "$specs" "$check")" >"$logfile" 2>&1; then
        log "ERROR: installing $name failed; last lines of $logfile:"
        tail -n 30 "$logfile" >&2; exit 1
    fi
    done_step
    step "docker commit -> $tag"
    docker commit -m "$what" \
        --change 'CMD ["python3"]' \
        --change "LABEL org.hyperai.base-id=$base_id org.hyperai.specs-key=$key" \
        "$cname" "$tag" >/dev/null
    docker rm -f "$cname" >/dev/null; trap - EXIT
    drop_old_image "$old_id" "$tag"
    done_step
    local total own
    total=$(docker image inspect --format '{{.Size}}' "$tag")
    own=$((total - $(docker image inspect --format '{{.Size}}' "$BASE_TAG")))
    log "$tag: built in $((SECONDS - t0))s; image $(awk -v b="$total" 'BEGIN{printf "%.0f MB", b/1e6}')" \
        "($(awk -v b="$own" 'BEGIN{printf "%.0f MB", b/1e6}') on top of $BASE_TAG)"
    log "$tag: $(docker run --rm --network none "$tag" sh -c "grep -Ei '^(torch|torchvision|tensorflow|keras|numpy|openbayestool)==' /usr/local/share/hyperai/packages.txt | tr '\n' ' '")"
}

build_pytorch() {
    build_framework pytorch "$PYTORCH_TAG" "$PYTORCH_PIP_SPECS" \
        "import torch, torchvision; $SCIENCE_IMPORTS; print(torch.__version__, torchvision.__version__)" \
        "PyTorch $TORCH_VERSION, torchvision $TORCHVISION_VERSION, openbayestool, scientific stack"
}

build_tensorflow() {
    build_framework tensorflow "$TENSORFLOW_TAG" "$TENSORFLOW_PIP_SPECS" \
        "import tensorflow as tf, keras; $SCIENCE_IMPORTS; print(tf.__version__, keras.__version__)" \
        "TensorFlow $TENSORFLOW_VERSION, openbayestool, scientific stack"
}

# ------------------------------------------------------------------------------------------
verify() {
    if image_exists "$BASE_TAG"; then
        log "verify $BASE_TAG: numpy $(docker run --rm "$BASE_TAG" python3 -c 'import numpy; print(numpy.__version__)')"
        local times=() i t0 t1
        for i in 1 2 3 4 5; do
            t0=$(date +%s.%N); docker run --rm "$BASE_TAG" true; t1=$(date +%s.%N)
            times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')")
        done
        log "verify $BASE_TAG: 'docker run --rm true' median $(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)s (runs: ${times[*]})"
    fi
    if image_exists "$JUPYTER_TAG"; then
        local port name token="hyperai-verify" code="000" t0 waited
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        name="hyperai-verify-jupyter-$$"
        t0=$(date +%s.%N)
        docker run --rm -d --name "$name" -p "127.0.0.1:$port:8888" "$JUPYTER_TAG" \
            jupyter lab --allow-root --ip=0.0.0.0 --ServerApp.token="$token" --no-browser >/dev/null
        for _ in $(seq 1 120); do
            code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/status?token=$token" || true)
            [ "$code" = 200 ] && break
            sleep 0.25
        done
        waited=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
        local noauth; noauth=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/status" || true)
        if [ "$code" != 200 ]; then
            docker logs "$name" 2>&1 | tail -n 20 >&2; docker rm -f "$name" >/dev/null
            log "ERROR: JupyterLab did not answer /api/status (last HTTP code $code)"; exit 1
        fi
        docker rm -f "$name" >/dev/null
        log "verify $JUPYTER_TAG: /api/status 200 after ${waited}s (without token: $noauth)"
    fi
    if image_exists "$PYTORCH_TAG"; then
        verify_run "$PYTORCH_TAG" "import torch, openbayestool
conv = torch.nn.Conv2d(1, 4, 3)
loss = conv(torch.randn(2, 1, 8, 8)).square().mean()
loss.backward()
print('torch', torch.__version__, 'cuda available:', torch.cuda.is_available(),
      'conv grad norm %.3f' % conv.weight.grad.norm().item())"
    fi
    if image_exists "$TENSORFLOW_TAG"; then
        verify_run "$TENSORFLOW_TAG" "import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'
import numpy as np, tensorflow as tf, keras, openbayestool
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation='relu'), keras.layers.Dense(1)])
model.compile(optimizer='adam', loss='mse')
history = model.fit(np.random.rand(64, 4), np.random.rand(64, 1), epochs=2, verbose=0)
print('tensorflow', tf.__version__, 'keras', keras.__version__, 'loss %.4f' % history.history['loss'][-1])"
    fi
}

verify_run() {  # a tiny computation in an image, timed (container start + imports + work)
    local tag="$1" code="$2" t0 out
    t0=$(date +%s.%N)
    out=$(docker run --rm --network none "$tag" python3 -c "$code" 2>&1) \
        || { printf '%s\n' "$out" >&2; log "ERROR: the check in $tag failed"; exit 1; }
    log "verify $tag: $(printf '%s' "$out" | tail -n 1) ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s)"
}

case "$ONLY" in
    base) build_base ;;
    jupyter) build_jupyter ;;
    pytorch) build_pytorch ;;
    tensorflow) build_tensorflow ;;
    *) build_base; build_jupyter; build_pytorch; build_tensorflow ;;
esac
[ "$VERIFY" = 1 ] && verify
log "total $((SECONDS - T_ALL))s"
docker images --format 'table {{.Repository}}:{{.Tag}}\t{{.ID}}\t{{.Size}}' 'hyperai/*'
