#!/bin/busybox sh
# Stage 1 of the seg6 kernel VM (the initramfs's /init, static busybox): Debian's cloud kernel has
# virtio as modules, so load what reading the root disk needs, mount it, and hand over to stage 2.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# modules.order of the build script: dependencies first.
while read -r m; do insmod "/lib/modules/$m" || echo "stage1: insmod $m failed" >/dev/console; done </lib/modules/load
for _ in $(seq 1 100); do [ -b /dev/vda ] && break; usleep 20000; done
mkdir -p /newroot
if ! mount -t ext4 -o ro /dev/vda /newroot; then
  echo "stage1: cannot mount /dev/vda (no virtio disk?)" >/dev/console
  poweroff -f
fi
mount -o remount,rw /newroot
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /usr/local/sbin/segmesh-vm-init
