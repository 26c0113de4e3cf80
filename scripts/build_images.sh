#!/usr/bin/env bash
# make images: every target of docker/Dockerfile, built offline from wheels resolved on this host.
#
#   scripts/build_images.sh [IMAGE ...]        (default: every image of docker/locks)
#
# 1. The engine: docker when a Docker engine answers, else podman (Debian's podman, buildah and
#    runc are installed when neither is there, and catatonit, the init of kube play's pods). podman
#    runs with runc and the host's hard nofile and nproc limits (build/containers.conf,
#    CONTAINERS_CONF): crun fails on hosts with hybrid cgroups, and podman's own default limits can
#    exceed the host's.
# 2. Wheels: every package of docker/locks/*.lock, as wheels (built here from an sdist only where
#    the index has no wheel) in
#    $CACHE_DIR/wheels once, then linked into build/wheels (the build context). The images install
#    from there with --no-index.
# 3. Base: python:3.11-slim-bookworm when the engine has it or can pull it; otherwise a base made
#    here from Debian bookworm's packages (mmdebstrap, the host's apt sources), with the same
#    Python minor version: localhost/voicebot/python-base:3.11-bookworm. VOICEBOT_BASE=debian skips
#    the pull, VOICEBOT_BASE=official refuses the fallback.
# 4. Each target, tagged voicebot/<image>:<chart appVersion>; sizes and build times are printed
#    and written to build/images.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE_DIR="${CACHE_DIR:-${HOME}/.cache/voicebot}"
PY="${PY:-python3}"
TAG="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/voicebot/Chart.yaml)"
OFFICIAL_BASE="python:3.11-slim-bookworm"
DEBIAN_BASE="localhost/voicebot/python-base:3.11-bookworm"
VOICEBOT_BASE="${VOICEBOT_BASE:-auto}"
mapfile -t ALL < <(ls docker/locks/*.lock | xargs -n1 basename | sed 's/\.lock$//')
IMAGES=("${@:-${ALL[@]}}")
mkdir -p build

log() { echo "images: $*" >&2; }

apt_install() {
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

# --- 1. engine ------------------------------------------------------------------------------------
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  ENGINE=docker
else
  command -v podman >/dev/null && command -v runc >/dev/null || apt_install podman buildah runc
  # catatonit is only recommended by podman, but kube play's pods need it (their pause container's init)
  command -v catatonit >/dev/null || [[ -x /usr/libexec/podman/catatonit ]] || apt_install catatonit
  ENGINE=podman
  # podman's default limits exceed what an unprivileged-looking host (hard limits) allows: use its own
  nofile="$(ulimit -Hn)" nproc="$(ulimit -Hu)"
  [[ ${nofile} == unlimited ]] && nofile=1048576
  # nproc above 32768 was refused (EPERM) on a host whose hard limit was 96365
  [[ ${nproc} == unlimited || ${nproc} -gt 32768 ]] && nproc=32768
  cat > build/containers.conf <<EOF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]
[engine]
runtime = "runc"
EOF
  export CONTAINERS_CONF="${PWD}/build/containers.conf"
fi
# podman writes OCI images unless told otherwise, and OCI images have no HEALTHCHECK
BUILD_FORMAT=""
[[ ${ENGINE} == podman ]] && BUILD_FORMAT="--format docker"
log "engine: ${ENGINE}"

# --- 2. wheels ------------------------------------------------------------------------------------
WHEELS="${CACHE_DIR}/wheels"
mkdir -p "${WHEELS}"
sort -u docker/locks/*.lock | grep -v '^#' > build/all-images.lock
# `pip wheel`: a binary wheel where the index has one, built here from the sdist where it has not
# (docopt, pure Python); wheels already in the cache are not fetched again.
"${PY}" -m pip wheel --quiet --disable-pip-version-check --no-deps --prefer-binary \
  --find-links "${WHEELS}" -w "${WHEELS}" -r build/all-images.lock 2>&1 | grep -v "is ignored" >&2 || true
rm -rf build/wheels && mkdir -p build/wheels
missing=0
while IFS= read -r pin; do
  name="${pin%%==*}" version="${pin#*==}"
  # wheel file names use the normalized name with underscores
  pattern="$(echo "${name}" | tr '[:upper:]-.' '[:lower:]__')-${version}-"
  found="$(find "${WHEELS}" -maxdepth 1 -iname "${pattern}*.whl" | head -n 1)"
  if [[ -z "${found}" ]]; then
    log "no wheel for ${pin}"; missing=1; continue
  fi
  ln "${found}" build/wheels/ 2>/dev/null || cp "${found}" build/wheels/
done < build/all-images.lock
[[ ${missing} == 0 ]] || { log "wheels missing: the images cannot install offline"; exit 1; }
log "wheels: $(ls build/wheels | wc -l) in build/wheels ($(du -sh build/wheels | cut -f1))"

# --- 3. base --------------------------------------------------------------------------------------
have_image() { ${ENGINE} image inspect "$1" >/dev/null 2>&1; }
BASE=""
if [[ ${VOICEBOT_BASE} != debian ]]; then
  if have_image "${OFFICIAL_BASE}" || timeout 60 ${ENGINE} pull -q "${OFFICIAL_BASE}" >/dev/null 2>&1; then
    BASE="${OFFICIAL_BASE}"
  elif [[ ${VOICEBOT_BASE} == official ]]; then
    log "${OFFICIAL_BASE} is not available and VOICEBOT_BASE=official"; exit 1
  fi
fi
if [[ -z ${BASE} ]]; then
  BASE="${DEBIAN_BASE}"
  if ! have_image "${BASE}"; then
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
    ROOTFS="${CACHE_DIR}/images/python-base-3.11-bookworm.tar"
    mkdir -p "$(dirname "${ROOTFS}")"
    if [[ ! -s ${ROOTFS} ]]; then
      log "building ${BASE} from Debian packages (no registry answered)"
      sources=()
      [[ -f /etc/apt/sources.list.d/debian.sources ]] && sources=(/etc/apt/sources.list.d/debian.sources)
      # passwd: useradd; libgomp1: the local LLM wheel; the rest is what python:3.11-slim has.
      # merged-usr hook: /usr merged without the usrmerge package (which pulls in perl); no docs,
      # man pages or translations (copyright files stay).
      mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates,passwd,libgomp1 \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
        bookworm "${ROOTFS%.tar}.partial.tar" "${sources[@]}" && mv "${ROOTFS%.tar}.partial.tar" "${ROOTFS}"
    fi
    ${ENGINE} import --change 'CMD ["python3"]' "${ROOTFS}" "${BASE}" >/dev/null
  fi
fi
BASE_IMAGE="${BASE%:*}" BASE_TAG="${BASE##*:}"
log "base: ${BASE}"

# --- 4. targets -----------------------------------------------------------------------------------
: > build/images.tsv
for image in "${IMAGES[@]}"; do
  start=${SECONDS}
  log "building voicebot/${image}:${TAG}"
  ${ENGINE} build -q ${BUILD_FORMAT} -f docker/Dockerfile --target "${image}" \
    --build-arg "PYTHON_IMAGE=${BASE_IMAGE}" --build-arg "PYTHON_TAG=${BASE_TAG}" \
    -t "voicebot/${image}:${TAG}" . >/dev/null
  size="$(${ENGINE} image inspect "voicebot/${image}:${TAG}" --format '{{.Size}}')"
  printf '%s\t%s\t%d\t%d\n' "${image}" "${TAG}" "${size}" "$((SECONDS - start))" | tee -a build/images.tsv >&2
done
log "built ${#IMAGES[@]} images on ${BASE} (build/images.tsv: image, tag, bytes, seconds)"
