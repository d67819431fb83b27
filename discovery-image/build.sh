#!/usr/bin/env bash
# build.sh builds the Underlay discovery image: Debian's kernel plus a u-root
# initramfs with underlay-agent as uinit, the kernel modules real servers
# need (with their dependencies) and mdadm. Outputs go to
# discovery-image/out/: vmlinuz and initramfs.cpio.zst.
#
# Environment: KVER (kernel release, default: newest installed Debian
# kernel), MODULES (space-separated extra modules), FORCE=1 (rebuild even if
# the inputs did not change), GO (go binary).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
out="$here/out"
stage="$out/stage"
GO=${GO:-go}
export PATH="/usr/local/go/bin:$PATH"

log() { printf 'discovery-image: %s\n' "$*" >&2; }

# Modules the image loads at boot, with parameters. Dependencies come from
# modules.dep; modules the kernel lacks are skipped with a note.
BASE_MODULES=(
	# virtio (QEMU, clouds); virtio_rng seeds the kernel's random pool in
	# VMs without RDRAND (getrandom blocks DHCP and TLS until it is seeded)
	virtio_pci virtio_rng virtio_net virtio_blk virtio_scsi
	# NICs
	e1000 e1000e igb igbvf ixgbe ixgbevf i40e iavf ice bnxt_en tg3 r8169 vmxnet3 mlx4_en mlx5_core
	# storage
	sd_mod ahci nvme megaraid_sas mpt3sas
	# software RAID; libcrc32c (raid456) needs a crc32c implementation, a
	# softdep that modules.dep does not list
	crc32c_intel crc32c_generic md_mod raid0 raid1 raid10 raid456
	# host networking
	"bonding max_bonds=0" 8021q
)

# --- Debian packages -------------------------------------------------------
need=()
for p in linux-image-amd64 mdadm zstd; do
	dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
	[[ $(id -u) == 0 ]] || { log "need root to install: ${need[*]}"; exit 1; }
	log "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- kernel ----------------------------------------------------------------
if [[ -z ${KVER:-} ]]; then
	KVER=$(for k in /boot/vmlinuz-*; do v=${k#/boot/vmlinuz-}; [[ -f /lib/modules/$v/modules.dep ]] && echo "$v"; done | sort -V | tail -n1)
fi
[[ -n $KVER && -f /boot/vmlinuz-$KVER ]] || { log "no Debian kernel with modules found (KVER=${KVER:-})"; exit 1; }
moddir=/lib/modules/$KVER
[[ -r /boot/vmlinuz-$KVER ]] || { log "cannot read /boot/vmlinuz-$KVER"; exit 1; }

# --- change detection --------------------------------------------------------
mdadm_bin=$(command -v mdadm || echo /sbin/mdadm)
stamp=$( {
	echo "$KVER ${BASE_MODULES[*]} ${MODULES:-}"
	dpkg-query -W -f='${Version}\n' mdadm "linux-image-$KVER" 2>/dev/null || true
	"$GO" version
	sha256sum "$here/build.sh" "$root/go.mod" "$root/go.sum"
	(cd "$root" && find agent pkg proto -type f \( -name '*.go' -o -name '*.proto' \) -not -name '*_test.go' -print0 |
		sort -z | xargs -0 sha256sum)
} | sha256sum | cut -d' ' -f1)
if [[ ${FORCE:-} != 1 && -f $out/stamp && $(cat "$out/stamp") == "$stamp" && -f $out/vmlinuz && -f $out/initramfs.cpio.zst ]]; then
	log "up to date ($KVER)"
	ln -sfn initramfs.cpio.zst "$out/initramfs"
	ls -l "$out/vmlinuz" "$out/initramfs.cpio.zst" | awk '{printf "discovery-image: %-40s %6.1f MB\n", $9, $5/1048576}' >&2
	exit 0
fi
rm -rf "$stage" && mkdir -p "$stage"

# --- module closure ------------------------------------------------------------
# modname: path -> kernel module name (basename, no .ko*, '-' as '_').
declare -A dep_path dep_list builtin
while IFS= read -r line; do
	path=${line%%:*}
	name=${path##*/}; name=${name%%.ko*}; name=${name//-/_}
	dep_path[$name]=$path
	dep_list[$name]=${line#*:}
done <"$moddir/modules.dep"
if [[ -f $moddir/modules.builtin ]]; then
	while IFS= read -r path; do
		name=${path##*/}; name=${name%%.ko*}; builtin[${name//-/_}]=1
	done <"$moddir/modules.builtin"
fi

declare -A want_file=()
listed=() missing=() inbuilt=()
add_closure() {
	local name=$1 d dn
	[[ -n ${want_file[$name]:-} ]] && return
	want_file[$name]=${dep_path[$name]}
	for d in ${dep_list[$name]}; do
		dn=${d##*/}; dn=${dn%%.ko*}; dn=${dn//-/_}
		[[ -n ${dep_path[$dn]:-} ]] && add_closure "$dn"
	done
}
: >"$stage/modules"
echo "# modules the discovery image loads at boot; dependencies come from modules.dep" >>"$stage/modules"
read -r -a extra <<<"${MODULES:-}"
for entry in "${BASE_MODULES[@]}" "${extra[@]}"; do
	name=${entry%% *}; name=${name//-/_}
	if [[ -n ${dep_path[$name]:-} ]]; then
		add_closure "$name"
		echo "$entry" >>"$stage/modules"
		listed+=("$name")
	elif [[ -n ${builtin[$name]:-} ]]; then
		inbuilt+=("$name")
	else
		missing+=("$name")
	fi
done
files=(-files "$stage/modules:etc/underlay/modules"
	-files "$moddir/modules.dep:lib/modules/$KVER/modules.dep")
[[ -f $moddir/modules.builtin ]] && files+=(-files "$moddir/modules.builtin:lib/modules/$KVER/modules.builtin")
for name in "${!want_file[@]}"; do
	p=${want_file[$name]}
	files+=(-files "$moddir/$p:lib/modules/$KVER/$p")
done
log "kernel $KVER: ${#listed[@]} modules listed, ${#want_file[@]} files with dependencies"
((${#inbuilt[@]})) && log "built into the kernel: ${inbuilt[*]}"
((${#missing[@]})) && log "not in this kernel, skipped: ${missing[*]}"

# mdadm and its shared libraries (u-root -files copies them by ldd).
files+=(-files "$mdadm_bin:sbin/mdadm")

# --- u-root ----------------------------------------------------------------------
cd "$root"
mkdir -p "$out/tools"
"$GO" build -o "$out/tools/u-root" github.com/u-root/u-root
log "building initramfs with u-root"
# Binary mode (each command its own static binary in /bin) reuses the Go
# build cache: a rebuild takes seconds where busybox mode takes minutes.
GOFLAGS=-trimpath CGO_ENABLED=0 "$out/tools/u-root" -o "$stage/initramfs.cpio" \
	-build=binary -uinitcmd=/bin/underlay-agent -defaultsh= \
	"${files[@]}" \
	github.com/u-root/u-root/cmds/core/init \
	./agent/cmd/underlay-agent 2> >(grep -v -i 'go version' >&2)

# The Debian kernel takes zstd (CONFIG_RD_ZSTD=y) and decompresses it faster
# than xz under emulation, at a similar size.
zstd -q -f -19 -T0 "$stage/initramfs.cpio" -o "$out/initramfs.cpio.zst"
install -m 0644 "/boot/vmlinuz-$KVER" "$out/vmlinuz"
echo "$KVER" >"$out/kernel-release"
cp "$stage/modules" "$out/modules"
echo "$stamp" >"$out/stamp"
# The boot endpoint serves <image-dir>/initramfs.
ln -sfn initramfs.cpio.zst "$out/initramfs"
rm -rf "$stage"
ls -l "$out/vmlinuz" "$out/initramfs.cpio.zst" | awk '{printf "discovery-image: %-40s %6.1f MB\n", $9, $5/1048576}' >&2
