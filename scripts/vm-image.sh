#!/usr/bin/env bash
# Builds the seg6 kernel VM's boot files (src/vm): Debian's cloud kernel (seg6, seg6local, seg6 HMAC,
# VRF), a busybox stage-1 initramfs and an ext4 root file system (bookworm minbase with the tools the
# system tests use), cached by a hash of its inputs:
#   inputs: this recipe's version, the package list, the kernel package and its version (the archive's
#           current dependency of linux-image-cloud-amd64), src/vm/guest/*, the apt sources.
#   output: $SEGMESH_VM_CACHE/<hash>/{vmlinuz,initrd.gz,root.img,kernel-version} (default cache
#           /var/cache/segmesh/vm, outside the checkout: fresh clones on the machine reuse it).
# The mmdebstrap result (the slow part: minutes of downloads) is cached on its own as
# rootfs-<hash>.tar, keyed by the recipe, suite, package list and apt sources, so a change to the
# guest scripts or a new kernel rebuilds the image in seconds.
# The kernel package is downloaded and unpacked (dpkg-deb -x), never installed on the host. The image
# is built without a loop mount (mke2fs -d) and used read-only (qemu -drive snapshot=on).
# Prints the cache directory as the last line of stdout; progress goes to stderr as `vm-image: ...`.
#   bash scripts/vm-image.sh           build what is missing
#   bash scripts/vm-image.sh --check   print the directory if it is built, exit 1 otherwise
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${SEGMESH_VM_CACHE:-/var/cache/segmesh/vm}
SUITE=bookworm
RECIPE=1 # bump when the recipe below changes
KERNEL_META=linux-image-cloud-amd64
PACKAGES=(
  iproute2 nftables iputils-ping iperf3 tcpdump tshark python3-scapy gobgpd frr
  kmod procps util-linux ethtool socat
)
# Stage 1 loads these (and what they depend on) to read the root disk; stage 2 modprobes the rest.
STAGE1_MODULES=(virtio_pci virtio_blk)

log() { printf 'vm-image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

[[ -f /etc/apt/sources.list.d/debian.sources ]] && sources=/etc/apt/sources.list.d/debian.sources || sources=/etc/apt/sources.list
kernel_pkg=$(apt-cache depends "$KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
[[ -n $kernel_pkg ]] || die "apt knows no $KERNEL_META dependency: run apt-get update (Debian's mirror must be reachable)"
kernel_version=$(apt-cache show --no-all-versions "$kernel_pkg" | awk '/^Version:/ {print $2; exit}')
rootfs_key=$( { echo "$RECIPE $SUITE ${PACKAGES[*]}"; cat "$sources"; } | sha256sum | cut -c1-16)
key=$(
  {
    echo "$RECIPE $SUITE ${PACKAGES[*]} ${STAGE1_MODULES[*]} $kernel_pkg $kernel_version"
    cat src/vm/guest/* "$sources"
  } | sha256sum | cut -c1-16
)
out=$CACHE/$key
if [[ -f $out/root.img ]]; then
  echo "$out"
  exit 0
fi
[[ ${1:-} == --check ]] && exit 1
[[ $(id -u) -eq 0 ]] || die "run as root (mmdebstrap and mke2fs -d keep file owners only as root)"
for tool in mmdebstrap mke2fs busybox; do
  command -v "$tool" >/dev/null || die "$tool is missing: run bash scripts/setup.sh"
done
busybox_bin=$(command -v busybox)
file -L "$busybox_bin" 2>/dev/null | grep -q 'statically linked' || [[ ! -x /usr/bin/file ]] ||
  die "$busybox_bin is not static: install busybox-static (bash scripts/setup.sh)"

mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
flock 9 # a second build of the same key waits, then finds it done
if [[ -f $out/root.img ]]; then
  echo "$out"
  exit 0
fi
t0=$(now_ms)
work=$(mktemp -d "$CACHE/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- kernel ---------------------------------------------------------------------------------------
log "kernel $kernel_pkg $kernel_version"
(cd "$work" && apt-get download -q "$kernel_pkg=$kernel_version" >/dev/null 2>"$work/download.log") ||
  { cat "$work/download.log" >&2; die "apt-get download $kernel_pkg failed"; }
mkdir "$work/kernel"
dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
kver=$(ls "$work/kernel/lib/modules")
t_kernel=$(now_ms)

# --- root file system -----------------------------------------------------------------------------
root=$work/root
rootfs_tar=$CACHE/rootfs-$rootfs_key.tar
t_debstrap=$(now_ms)
if [[ ! -f $rootfs_tar ]]; then
  log "mmdebstrap $SUITE minbase + ${PACKAGES[*]}"
  if ! mmdebstrap --quiet --variant=minbase --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    "$SUITE" "$work/rootfs.tar" "$sources" </dev/null >"$work/mmdebstrap.log" 2>&1; then
    tail -n 20 "$work/mmdebstrap.log" >&2
    die "mmdebstrap failed (log above)"
  fi
  mv "$work/rootfs.tar" "$rootfs_tar"
else
  log "root file system $rootfs_tar: reused"
fi
mkdir "$root"
tar -xpf "$rootfs_tar" -C "$root"
t_rootfs=$(now_ms)
mkdir -p "$root/usr/lib/modules" "$root/usr/local/lib/segmesh-vm" "$root/usr/local/sbin"
cp -a "$work/kernel/lib/modules/$kver" "$root/usr/lib/modules/"
chroot "$root" depmod "$kver" # the host may have no kmod; the root file system has
moddir=$root/usr/lib/modules/$kver
cp "$busybox_bin" "$root/usr/local/lib/segmesh-vm/busybox"
install -m 0755 src/vm/guest/init.sh "$root/usr/local/sbin/segmesh-vm-init"
echo segmesh-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost segmesh-vm\n::1 localhost ip6-localhost\n' >"$root/etc/hosts"
# --- stage-1 initramfs ----------------------------------------------------------------------------
# Each module after its dependencies (modules.dep lists a module's dependencies, nearest first).
declare -A seen=()
order=()
add_module() {
  local name=$1 path dep
  path=$(awk -v n="$name" -F: '{ f = $1; sub(".*/", "", f); sub("\\.ko.*$", "", f); gsub("-", "_", f) } f == n { print $1; exit }' "$moddir/modules.dep")
  [[ -n $path ]] || { grep -qE "/$name.ko" "$moddir/modules.builtin" && return 0; die "module $name not in $kver"; }
  [[ -n ${seen[$path]:-} ]] && return 0
  seen[$path]=1
  for dep in $(awk -v p="$path" -F: '$1 == p { print $2; exit }' "$moddir/modules.dep" | tr ' ' '\n' | tac); do
    dep=${dep##*/}
    dep=${dep%%.ko*}
    add_module "${dep//-/_}"
  done
  order+=("$path")
}
for m in "${STAGE1_MODULES[@]}"; do add_module "$m"; done
init=$work/initramfs
mkdir -p "$init"/{bin,dev,proc,sys,newroot,lib/modules}
cp "$busybox_bin" "$init/bin/busybox"
ln -s busybox "$init/bin/sh"
install -m 0755 src/vm/guest/stage1.sh "$init/init"
: >"$init/lib/modules/load"
for p in "${order[@]}"; do
  cp "$moddir/$p" "$init/lib/modules/"
  echo "${p##*/}" >>"$init/lib/modules/load"
done
(cd "$init" && find . | "$busybox_bin" cpio -o -H newc 2>/dev/null) | gzip -9 >"$work/initrd.gz"

rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
# Headroom for what the guest writes (logs, FRR state) on top of the tree; the image is sparse.
size_mb=$(($(du -sm "$root" | cut -f1) + 512))
mke2fs -q -t ext4 -O ^has_journal -L segmesh-vm -d "$root" "$work/root.img" "${size_mb}M" >&2
cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
echo "$kver" >"$work/kernel-version"
mkdir -p "$out.tmp"
mv "$work/vmlinuz" "$work/initrd.gz" "$work/root.img" "$work/kernel-version" "$out.tmp/"
mv "$out.tmp" "$out"
t_end=$(now_ms)
s() { printf '%d.%d s' $(($1 / 1000)) $(($1 % 1000 / 100)); }
log "built $out in $(s $((t_end - t0))) (kernel $(s $((t_kernel - t0))), root file system $(s $((t_rootfs - t_debstrap))), image $(s $((t_end - t_rootfs)))); root.img $(du -h --apparent-size "$out/root.img" | cut -f1) sparse, $(du -h "$out/root.img" | cut -f1) allocated"
echo "$out"
