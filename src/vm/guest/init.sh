#!/bin/sh
# PID 1 of the seg6 kernel VM (stage 2, on the Debian root file system). Mounts the basics, reads the
# job the host put into fw_cfg (opt/segmesh/job: a shell script calling the helpers below), prints the
# ready line and the command's output on ttyS1, then `SEGMESH_VM_RC=<exit status>`, and powers off.
# Everything else (kernel messages, this script's own log) goes to the console, ttyS0.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8
bb=/usr/local/lib/segmesh-vm/busybox
out=/dev/ttyS1
exec </dev/null >/dev/ttyS0 2>&1
log() { echo "segmesh-vm: $*"; }
off() { sync; $bb poweroff -f; }

mount -t proc proc /proc
mount -t sysfs sys /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
# Raw output on the result port: no \r added before \n, no echo.
stty -F $out raw -echo 2>/dev/null || $bb stty -F $out raw -echo
modprobe -a qemu_fw_cfg virtio_net virtiofs overlay || log "modprobe failed"
ip link set lo up
hostname segmesh-vm

# share TAG PATH ro|rw: the host's PATH at the same path. Read-only shares get a tmpfs overlay, so
# the guest can write (build outputs, caches) without touching the host.
share() {
  d=/run/segmesh-vm/$1
  mkdir -p "$d/lower" "$d/upper" "$d/work" "$2" || return 1
  if [ "$3" = rw ]; then
    mount -t virtiofs "$1" "$2"
  else
    mount -t virtiofs -o ro "$1" "$d/lower" &&
      mount -t overlay overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" "$2"
  fi
}
# nic MAC NAME [ADDRESS/LEN...]: names the virtio NIC with that MAC and gives it addresses.
nic() {
  mac=$1 name=$2
  shift 2
  for d in /sys/class/net/*; do
    [ "$(cat "$d/address")" = "$mac" ] || continue
    [ "${d##*/}" = "$name" ] || ip link set "${d##*/}" name "$name" || return 1
    for a in "$@"; do ip addr add "$a" dev "$name" nodad || return 1; done
    ip link set "$name" up
    return 0
  done
  log "no NIC with MAC $mac"
  return 1
}
ready() { echo SEGMESH_VM_READY >$out; }
# fail MESSAGE: set-up failed before the ready line; the host reports MESSAGE with the console tail.
fail() { log "$*"; echo "SEGMESH_VM_ERROR=$*" >$out; off; }
# finish RC: the last line the host reads.
finish() { echo "SEGMESH_VM_RC=$1" >$out; off; }

job=/sys/firmware/qemu_fw_cfg/by_name/opt/segmesh/job/raw
if [ ! -r $job ]; then
  fail "no job in fw_cfg (opt/segmesh/job)"
fi
cp $job /run/segmesh-vm-job.sh
log "job starting"
. /run/segmesh-vm-job.sh
log "job returned without finish"
finish 125
