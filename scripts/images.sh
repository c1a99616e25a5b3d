#!/usr/bin/env bash
# Builds the lab images locally (there is no registry here), each tagged by a hash of its inputs, so an
# unchanged image is reused and a stale one never runs:
#
#   segmesh-lab-base:<hash>  debootstrap --variant=minbase bookworm + frr gobgpd iproute2 ... (docker import)
#                            inputs: this recipe's version, the suite, the package list, the apt sources
#   segmesh-lab-deps:<hash>  + Node 24 (the `node` npm package's binary) + production node_modules
#                            inputs: the base tag, package-lock.json, the node binary
#   segmesh-lab:<hash>       + the built project (dist/, bin/, build/bpf/, package.json) (docker build)
#                            inputs: the deps tag, every file of dist/, bin/ and build/bpf/, package.json
#
# The debootstrap result is cached as a tarball under /var/cache/segmesh (debootstrap runs once per
# machine). Prints the project image's tag as the last line of stdout; progress goes to stderr as
# `images: ...` lines. Needs root, the engine of scripts/dockerd.sh (or DOCKER_HOST) and a built
# project (`npm run build`).
#   bash scripts/images.sh           build what is missing, print the project tag
#   bash scripts/images.sh --check   print the project tag if it is built, exit 1 otherwise (no build)
set -euo pipefail
cd "$(dirname "$0")/.."

export DOCKER_HOST=${DOCKER_HOST:-unix:///run/segmesh-docker.sock}
export DOCKER_BUILDKIT=0 # the legacy builder: no buildx plugin, no registry look-ups
CACHE=${SEGMESH_IMAGE_CACHE:-/var/cache/segmesh}
SUITE=bookworm
RECIPE=4 # bump when the base recipe below changes
# libbpf1: the agents' eBPF backend (kernels without seg6 routes) loads its programs through it.
PACKAGES=(frr gobgpd iproute2 iputils-ping nftables tcpdump procps iperf3 ca-certificates libbpf1)

log() { printf 'images: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
h() { sha256sum | cut -c1-12; }
exists() { docker image inspect "$1" >/dev/null 2>&1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
elapsed() { local ms=$(($(now_ms) - $1)); printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100)); }

# Runs "$@" with its output in LOG, printing what it is at every 10 s (a cold build takes minutes).
with_progress() {
  local what=$1 logfile=$2 pid t=0 rc=0
  shift 2
  "$@" >"$logfile" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    t=$((t + 1))
    if ((t % 10 == 0)); then
      log "$what: ${t} s ($(grep -v '^\s*$' "$logfile" | tail -n 1 | cut -c1-80))"
    fi
  done
  wait "$pid" || rc=$?
  if ((rc != 0)); then
    tail -n 20 "$logfile" >&2
    die "$what failed (exit $rc; log above)"
  fi
}

check_only=0
[[ ${1:-} == --check ]] && check_only=1

[[ -f dist/cli/main.js ]] || die "dist/ is missing: build the project first (npm run build)"
[[ -f build/bpf/segmesh.o ]] || die "build/bpf/segmesh.o is missing: build the project first (npm run build)"
[[ -x node_modules/node/bin/node ]] || die "node_modules/node/bin/node is missing: run npm ci (or scripts/setup.sh)"
if [[ -n $(find src proto -newer dist/cli/main.js -type f \( -name '*.ts' -o -name '*.proto' \) -print -quit 2>/dev/null) ]]; then
  log "warning: src/ has files newer than dist/; the image takes dist/ as it is (run npm run build)"
fi

# The apt sources of the host: debootstrap's mirror, and the sources inside the image.
sources_files=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [[ -s $f ]] && sources_files+=("$f")
done
mirror=$(
  {
    cat "${sources_files[@]}" 2>/dev/null | awk '/^URIs:/ {print $2}'
    cat "${sources_files[@]}" 2>/dev/null | awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2}'
  } | grep -v -e security -e '^$' | head -n1
)
mirror=${mirror:-http://deb.debian.org/debian}

# mmdebstrap (apt downloads, one pass) when installed, else debootstrap; SEGMESH_BOOTSTRAP=debootstrap forces it.
bootstrap=debootstrap
[[ ${SEGMESH_BOOTSTRAP:-} != debootstrap ]] && command -v mmdebstrap >/dev/null && bootstrap=mmdebstrap
base_tag="segmesh-lab-base:$( { echo "$RECIPE $SUITE ${PACKAGES[*]} $bootstrap"; cat "${sources_files[@]}" 2>/dev/null; } | h)"
node_bin=node_modules/node/bin/node
deps_tag="segmesh-lab-deps:$( { echo "$base_tag"; cat package-lock.json; "$node_bin" --version; } | h)"
project_hash=$(
  {
    echo "$deps_tag"
    cat package.json
    find dist bin build/bpf -type f -print0 | sort -z | xargs -0 sha256sum
  } | h
)
project_tag="segmesh-lab:$project_hash"

if ((check_only)); then
  exists "$project_tag" && { echo "$project_tag"; exit 0; }
  exit 1
fi
[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap and the engine need it)"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 ||
  die "no Docker engine answers on $DOCKER_HOST: start it with bash scripts/dockerd.sh"

mkdir -p "$CACHE"
exec 9>"$CACHE/images.lock"
flock 9 # two builds at once (a test and the CLI) would race on the same tags

work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- base ------------------------------------------------------------------------------------------
if exists "$base_tag"; then
  log "base $base_tag: reused"
else
  t0=$(now_ms)
  tarball="$CACHE/debootstrap-$SUITE-minbase-$(echo "$mirror" | h).tar"
  # Inside the image: the host's apt sources, a policy-rc.d that keeps services from starting, no
  # apt lists or caches, an empty resolv.conf (Docker provides one).
  finish_root() {
    local r=$1 f
    rm -f "$r"/etc/apt/sources.list "$r"/etc/apt/sources.list.d/*
    for f in "${sources_files[@]}"; do cp "$f" "$r$f"; done
    printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
    chmod +x "$r/usr/sbin/policy-rc.d"
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/log/*.log
    : >"$r/etc/resolv.conf"
  }
  base_import() {
    docker import \
      --change 'ENV PATH=/opt/segmesh/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'LABEL segmesh.image=base' \
      "$1" "$base_tag" >/dev/null
  }
fi
if ! exists "$base_tag" && [[ $bootstrap == mmdebstrap ]]; then
  # mmdebstrap (when installed) downloads with apt and installs in one pass: about twice as fast as
  # debootstrap + apt-get in the chroot (measured 204 s against 448 s on a loaded 2-core machine).
  log "mmdebstrap --variant=minbase $SUITE from $mirror with ${PACKAGES[*]}"
  { echo 'set -eu'; declare -p sources_files; declare -f finish_root; echo 'finish_root "$1"'; } >"$work/finish.sh"
  with_progress mmdebstrap "$work/mmdebstrap.log" \
    mmdebstrap --variant=minbase --mode=root --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    --aptopt='APT::Install-Recommends "false"' \
    --customize-hook="bash $work/finish.sh \"\$1\"" \
    "$SUITE" "$work/base.tar" "$mirror"
  log "importing the base"
  base_import - <"$work/base.tar"
  rm -f "$work/base.tar"
  log "base $base_tag built in $(elapsed "$t0")"
elif ! exists "$base_tag"; then
  if [[ ! -s $tarball ]]; then
    command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
    log "debootstrap --variant=minbase $SUITE from $mirror (once per machine: 30 s to a few minutes)"
    with_progress debootstrap "$work/debootstrap.log" \
      debootstrap --variant=minbase "$SUITE" "$work/boot" "$mirror"
    tar -C "$work/boot" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$work/boot"
    log "debootstrap done in $(elapsed "$t0"), cached as $tarball"
  fi
  root="$work/root"
  mkdir -p "$root"
  tar -C "$root" -xf "$tarball"
  finish_root "$root"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  log "installing ${PACKAGES[*]} into the base"
  # A private mount namespace: /proc and /dev of the chroot vanish with it, even on failure.
  with_progress "package installation" "$work/apt.log" \
    unshare --mount --propagation private -- bash -euo pipefail -c '
    root=$1; shift
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
      sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends $* && apt-get clean"
  ' _ "$root" "${PACKAGES[@]}"
  finish_root "$root"
  log "importing the base"
  tar -C "$root" -c . | base_import -
  rm -rf "$root"
  log "base $base_tag built in $(elapsed "$t0")"
fi

# --- deps: Node 24 + production node_modules --------------------------------------------------------
if exists "$deps_tag"; then
  log "deps $deps_tag: reused"
else
  t0=$(now_ms)
  ctx="$work/deps"
  mkdir -p "$ctx/node_modules/node/bin"
  cp "$node_bin" "$ctx/node_modules/node/bin/node"
  # The production dependency tree, as npm resolved it (offline: read from node_modules).
  # npm ls exits non-zero on an extraneous or missing optional package (it still lists the tree);
  # under pipefail that would end the script without a word.
  { npm ls --omit=dev --parseable --all 2>/dev/null || true; } | tail -n +2 | sed "s|^$PWD/||" |
    grep '^node_modules/' | sort -u >"$work/prod.txt"
  [[ -s $work/prod.txt ]] || die "npm ls found no production dependencies; run npm ci"
  tar -cf - -T "$work/prod.txt" | tar -C "$ctx" -xf -
  cat >"$ctx/Dockerfile" <<EOF
FROM $base_tag
COPY node_modules /opt/segmesh/node_modules
LABEL segmesh.image=deps
EOF
  log "building $deps_tag (Node $("$node_bin" --version), $(wc -l <"$work/prod.txt") packages)"
  docker build -q -t "$deps_tag" "$ctx" >/dev/null 2>"$work/build.log" ||
    { tail -n 20 "$work/build.log" >&2; die "docker build of the deps image failed"; }
  rm -rf "$ctx"
  log "deps $deps_tag built in $(elapsed "$t0")"
fi

# --- project ----------------------------------------------------------------------------------------
if exists "$project_tag"; then
  log "project $project_tag: reused"
else
  t0=$(now_ms)
  ctx="$work/project"
  mkdir -p "$ctx"
  cp -a dist bin package.json "$ctx/"
  mkdir -p "$ctx/build" && cp -a build/bpf "$ctx/build/"
  cat >"$ctx/Dockerfile" <<EOF
FROM $deps_tag
COPY package.json /opt/segmesh/package.json
COPY bin /opt/segmesh/bin
COPY dist /opt/segmesh/dist
# The eBPF backend's object, where dist/dataplane/ebpf/backend.js looks for it (../../../build/bpf).
COPY build /opt/segmesh/build
WORKDIR /opt/segmesh
LABEL segmesh.image=project segmesh.image.inputs=$project_hash
EOF
  docker build -q -t "$project_tag" "$ctx" >/dev/null 2>"$work/build.log" ||
    { tail -n 20 "$work/build.log" >&2; die "docker build of the project image failed"; }
  log "project $project_tag built in $(elapsed "$t0")"
  # Older images are stale; keep the three newest of each kind besides the current one (another
  # checkout on this machine, e.g. a CI clone, may be using them) and remove the rest that no
  # container uses (an image in use fails quietly and stays).
  for keep in "$project_tag" "$deps_tag" "$base_tag"; do
    docker image ls --format '{{.Repository}}:{{.Tag}}' "${keep%%:*}" | grep -vx "$keep" | tail -n +4 |
      xargs -r docker image rm >/dev/null 2>&1 || true
  done
fi
echo "$project_tag"
