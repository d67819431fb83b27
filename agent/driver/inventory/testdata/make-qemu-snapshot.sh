#!/bin/sh
# Rebuilds qemu-q35-5disk.tar.gz exactly as it was made (see README.md).
# Needs: apt-get install qemu-system-x86 linux-image-amd64 (kernel 6.1.0-56-amd64).
# Run from the repository root as root. Software emulation only (no KVM).
set -e
K=6.1.0-56-amd64; M=/lib/modules/$K; W=$(mktemp -d)
CGO_ENABLED=0 go build -o "$W/root/init" ./agent/driver/inventory/cmd/invsnap
echo qemu-server > "$W/root/hostname"
order=""
add() { case " $order " in *" $1 "*) ;; *) order="$order $1";; esac; }
for m in virtio_blk virtio_net ahci sd_mod nvme e1000 raid1 virtio_pci crct10dif_generic crc64_rocksoft_generic; do
  line=$(grep -E "/$m.ko:" $M/modules.dep || true); [ -z "$line" ] && continue
  for d in $(for d in ${line#*:}; do echo $d; done | tac); do add $d; done; add ${line%%:*}
done
pre=""; rest=""
for r in $order; do case $r in *crct10dif_generic*|*crc64_rocksoft_generic*|*crct10dif_common*) pre="$pre $r";; *) rest="$rest $r";; esac; done
for r in $pre $rest; do mkdir -p "$W/root/$(dirname lib/modules/$K/$r)"; cp $M/$r "$W/root/lib/modules/$K/$r"; echo /lib/modules/$K/$r >> "$W/root/modules.list"; done
(cd "$W/root" && find . | cpio -o -H newc 2>/dev/null | gzip) > "$W/initrd.gz"
timeout 600 qemu-system-x86_64 \
  -machine q35 -accel tcg -m 4096 -smp 4,sockets=2,cores=2,threads=1 \
  -nographic -no-reboot \
  -kernel /boot/vmlinuz-$K -initrd "$W/initrd.gz" \
  -append "console=ttyS0 loglevel=3 panic=-1" \
  -uuid 6f1c3d2a-8b4e-4c7a-9d21-5e0f7a3b9c14 \
  -smbios type=1,serial=QEMU-SN-0001 \
  -blockdev driver=null-co,node-name=n0,size=17179869184,read-zeroes=on \
  -device virtio-blk-pci,drive=n0,serial=VBLK-0001 \
  -blockdev driver=null-co,node-name=n1,size=17179869184,read-zeroes=on \
  -device virtio-blk-pci,drive=n1,serial=VBLK-0002 \
  -device ahci,id=ahci0 \
  -blockdev driver=null-co,node-name=n2,size=1000204886016,read-zeroes=on \
  -device ide-hd,drive=n2,bus=ahci0.0,serial=SATA-0001,rotation_rate=7200 \
  -blockdev driver=null-co,node-name=n3,size=1000204886016,read-zeroes=on \
  -device ide-hd,drive=n3,bus=ahci0.1,serial=SATA-0002,rotation_rate=7200 \
  -blockdev driver=null-co,node-name=n4,size=480103981056,read-zeroes=on \
  -device nvme,drive=n4,serial=NVME-0001 \
  -netdev user,id=u0,restrict=on -device virtio-net-pci,netdev=u0,mac=52:54:00:12:34:01 \
  -netdev user,id=u1,restrict=on -device e1000,netdev=u1,mac=52:54:00:12:34:02 \
  > "$W/console.log" 2>&1
sed -n "/BEGIN INVSNAP/,/END INVSNAP/p" "$W/console.log" | grep -v INVSNAP | tr -d '\r' | base64 -d \
  > agent/driver/inventory/testdata/qemu-q35-5disk.tar.gz
rm -rf "$W"
