#!/usr/bin/env bash
# Set-up shared by the README's two commands (`npm run demo`, `npm test`): installs what the project
# needs on a fresh Debian 12 machine, idempotently, as root, without a tty. Each step skips what is
# already there, so a second run takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'setup: %s\n' "$*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  log "run as root: it installs Debian packages and the tests create network namespaces"
  exit 1
fi

# 1. Debian packages (the machine reaches Debian's mirror and the npm registry, nothing else).
packages=(
  iproute2 nftables iputils-ping procps util-linux strace   # kernel plumbing and inspection
  gobgpd golang-github-osrg-gobgp-dev                       # BGP sidecar and its API protos
  frr                                                       # the edge router stand-in
  tcpdump tshark python3-scapy iperf3                       # captures, packet crafting, throughput
  clang libbpf-dev bpftool                                  # the eBPF datapath
  docker.io podman containernetworking-plugins debootstrap  # topologies and container runtimes
  mmdebstrap                                                # faster lab base images (scripts/images.sh)
  busybox-static                                            # a tiny root file system for runtime tests
  qemu-system-x86 qemu-system-common                        # the seg6 kernel VM (src/vm; virtiofsd is in -common)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The project starts its own FRR and gobgpd; keep the packages' services from starting on install.
  own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
  fi
  trap '[[ $own_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. The distribution's own frr and gobgpd services stay disabled: tests and agents run their own.
for svc in frr gobgpd; do
  if [[ -e /etc/init.d/$svc || -e /lib/systemd/system/$svc.service ]]; then
    if command -v systemctl >/dev/null && systemctl is-enabled "$svc" >/dev/null 2>&1; then
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
      log "disabled the distribution's $svc service"
    fi
  fi
done

# 3. The group that may use the agent's API socket.
getent group segmesh >/dev/null || { groupadd --system segmesh && log "created group segmesh"; }

# 4. npm dependencies, Node 24 among them (the machine's own node may be older): only when the lockfile
# changed since the last install.
stamp=node_modules/.segmesh-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -x node_modules/node/bin/node || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi
export PATH="$PWD/node_modules/.bin:$PATH"
node_version=$(node --version)
if [[ $node_version != v24.* ]]; then
  log "node_modules/.bin/node is $node_version, expected v24 (the 'node' devDependency); run 'npm ci'"
  exit 1
fi

# 5. Build: protobuf code (ours and GoBGP's API) and TypeScript.
npm run --silent build
log "ready (node $node_version)"
