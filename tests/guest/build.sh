#!/usr/bin/env bash
# A tiny bootable Linux guest for the tests that need a real one (guest
# agent, graceful ACPI shutdown, quiesced snapshots).  The recipe is
# /work/shared/notes/guest.md:
#
#   Debian's kernel (the package linux-image-amd64 depends on), busybox-static
#   and qemu-guest-agent with the shared libraries `ldd` lists, all fetched
#   with `apt-get download` and unpacked with `dpkg-deb -x` into a temporary
#   folder (nothing is installed on the host), make OUTDIR/vmlinuz and
#   OUTDIR/initrd.img (cpio newc, gzip).  The initramfs /init loads the virtio
#   and ACPI button modules, prints HYPERSDK-GUEST-UP on /dev/ttyS0, runs
#   acpid (power button -> `poweroff -f`) and qemu-ga on the virtio port
#   org.qemu.guest_agent.0, then sleeps forever.
#
# Usage: tests/guest/build.sh [OUTDIR]
#
#   Builds once per machine into the cache, keyed by the package versions and
#   this script; later runs only link (or copy) the cached files to OUTDIR.
#   Prints the folder holding vmlinuz and initrd.img (OUTDIR, or the cache
#   entry when OUTDIR is not given) on stdout.  Domain XML: direct kernel
#   boot with <cmdline>console=ttyS0</cmdline>, <acpi/>, a serial console and
#   a virtio channel named org.qemu.guest_agent.0.  Linux guests hang under
#   nested KVM on our machines: use TCG.
#
# Environment:
#   HYPERSDK_GUEST_CACHE  cache folder (default /var/cache/hypersdk/guest)
#   HYPERSDK_GUEST_REBUILD=1  ignore the cache entry and build again
set -euo pipefail
umask 022
export LC_ALL=C

CACHE=${HYPERSDK_GUEST_CACHE:-/var/cache/hypersdk/guest}
SELF=$(readlink -f "${BASH_SOURCE[0]}")
# Load order matters: virtio needs virtio_ring, virtio_pci needs both
# transport helpers; button gives the ACPI power button, evdev its
# /dev/input node for acpid.
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev
	virtio_pci virtio_console button evdev)
TOP_PKGS=(busybox-static qemu-guest-agent) # plus the kernel package
MARKER=HYPERSDK-GUEST-UP

log() { printf 'guest: %s\n' "$*" >&2; }
die() {
	printf 'guest: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '15,27p' "$SELF" | sed 's/^# \{0,1\}//' >&2
	exit "$1"
}

OUT=
case $# in
0) ;;
1) case $1 in -h | --help) usage 0 ;; -*) usage 2 ;; *) OUT=$1 ;; esac ;;
*) usage 2 ;;
esac

# ------------------------------------------------------------ cache keys

# Cheap stand-in for "the package versions": they only change when the
# apt lists or sources change (apt-get update), or when this recipe does.
# apt-cache takes ~1 s per call here (no pkgcache.bin), too slow for a
# warm run, so the versions are resolved only when this changes.
fingerprint() {
	{
		sha256sum "$SELF"
		stat -c '%n %s %Y' /var/lib/apt/lists/*_Packages* \
			/etc/apt/sources.list /etc/apt/sources.list.d/* \
			/etc/apt/preferences /etc/apt/preferences.d/* 2>/dev/null || true
	} | sha256sum | cut -c1-32
}

complete_entry() {
	[ -s "$1/vmlinuz" ] && [ -s "$1/initrd.img" ] && [ -s "$1/manifest" ]
}

# publish ENTRY: hard-link (else copy) the results into OUT, readable by
# libvirt-qemu (folder 0755, files 0644).
publish() {
	local e=$1 f
	if [ -z "$OUT" ]; then
		printf '%s\n' "$e"
		return
	fi
	mkdir -p "$OUT"
	chmod 0755 "$OUT"
	for f in vmlinuz initrd.img manifest; do
		if [ "$e/$f" -ef "$OUT/$f" ]; then
			continue
		fi
		rm -f "$OUT/$f.tmp"
		ln "$e/$f" "$OUT/$f.tmp" 2>/dev/null || cp "$e/$f" "$OUT/$f.tmp"
		chmod 0644 "$OUT/$f.tmp"
		mv -f "$OUT/$f.tmp" "$OUT/$f"
	done
	printf '%s\n' "$(cd "$OUT" && pwd)"
}

# The fast path: no lock, no apt, no subprocess beyond sha256sum and stat.
try_warm() {
	local fp=$1 mfp key
	[ -z "${HYPERSDK_GUEST_REBUILD:-}" ] || return 1
	[ -r "$CACHE/memo" ] || return 1
	read -r mfp key <"$CACHE/memo" || return 1
	[ "$mfp" = "$fp" ] && [ -n "$key" ] && complete_entry "$CACHE/$key" || return 1
	publish "$CACHE/$key"
}

FP=$(fingerprint)
if try_warm "$FP"; then
	exit 0
fi

# ------------------------------------------------------------ cold path

mkdir -p "$CACHE" "$CACHE/debs"
chmod 0755 "$CACHE"
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
	log "another build holds $CACHE/.lock; waiting"
	flock 9
fi
# Someone else may have built it while we waited.
if try_warm "$FP"; then
	exit 0
fi

# need_cmd CMD PACKAGE
need_cmd() {
	command -v "$1" >/dev/null || die "$1 is needed (apt-get install $2)"
}
if ! command -v cpio >/dev/null; then
	[ "$(id -u)" -eq 0 ] || die "cpio is missing; run as root or apt-get install cpio"
	log "installing cpio"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cpio >/dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cpio >/dev/null; } ||
		die "cannot install cpio"
fi
for c in apt-get apt-cache dpkg-deb dpkg-query ldd gzip flock sha256sum; do
	command -v "$c" >/dev/null || die "$c is needed and missing"
done

# candidates PKG...: "name version" lines, the candidate of each package.
candidates() {
	apt-cache policy "$@" | awk '
		/^[^ ].*:$/ { p = substr($0, 1, length($0) - 1); next }
		/^  Candidate:/ { print p, $2 }'
}

kernel_pkg() {
	apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
		sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*-amd64\).*/\1/p'
}

# The key: this recipe plus "name version" of every package the build
# uses, sorted (the library packages come from the previous build's list,
# or from ldd during this one).
key_of() {
	{
		sha256sum "$SELF" | cut -d' ' -f1
		sort "$1"
	} | sha256sum | cut -c1-16
}

declare -A VER # package -> version being used

# resolve PKG...: fill VER from the apt candidates; die on unknown ones.
resolve() {
	local n v
	while read -r n v; do
		[ -n "$v" ] && [ "$v" != "(none)" ] || die "apt knows no candidate for $n (apt-get update?)"
		VER[$n]=$v
	done < <(candidates "$@")
	for n in "$@"; do
		[ -n "${VER[$n]:-}" ] || die "apt knows no package $n (apt-get update?)"
	done
}

KPKG=$(kernel_pkg)
[ -n "$KPKG" ] || die "cannot tell which kernel package linux-image-amd64 depends on (apt-get update?)"
resolve "$KPKG" "${TOP_PKGS[@]}"
# The library packages the last build needed; should apt no longer know
# one of them, the key simply misses and ldd decides again below.
LIBPKGS=()
if [ -s "$CACHE/libpkgs" ]; then
	mapfile -t LIBPKGS <"$CACHE/libpkgs"
	if ! (resolve "${LIBPKGS[@]}") 2>/dev/null; then
		LIBPKGS=()
	else
		resolve "${LIBPKGS[@]}"
	fi
fi

W=$(mktemp -d /tmp/hsdk-guest.XXXXXX)
trap 'rm -rf "$W"' EXIT
versions_file() {
	local n
	for n in "${!VER[@]}"; do printf '%s %s\n' "$n" "${VER[$n]}"; done | sort >"$1"
}
versions_file "$W/versions"
KEY=$(key_of "$W/versions")
if [ -z "${HYPERSDK_GUEST_REBUILD:-}" ] && complete_entry "$CACHE/$KEY"; then
	printf '%s %s\n' "$FP" "$KEY" >"$CACHE/memo"
	log "using cached build $KEY"
	publish "$CACHE/$KEY"
	exit 0
fi

log "building the test guest (once per machine; kernel $KPKG ${VER[$KPKG]})"
T0=$SECONDS

# fetch PKG...: the .deb of each at VER[PKG] into the deb cache, then
# unpack it into $W/x/PKG.
UPDATED=
fetch() {
	local n want=() f
	for n in "$@"; do
		f=$(deb_of "$n")
		[ -n "$f" ] || want+=("$n=${VER[$n]}")
	done
	if [ ${#want[@]} -gt 0 ]; then
		log "apt-get download ${want[*]}"
		if ! (cd "$CACHE/debs" && apt-get download -q -o APT::Sandbox::User=root \
			"${want[@]}" >"$W/download.log" 2>&1); then
			sed 's/^/guest:   /' "$W/download.log" >&2
			die "apt-get download failed (stale apt lists? try apt-get update)"
		fi
	fi
	for n in "$@"; do
		f=$(deb_of "$n")
		[ -n "$f" ] || die "apt-get download gave no .deb for $n ${VER[$n]}"
		[ -d "$W/x/$n" ] && continue
		mkdir -p "$W/x/$n"
		dpkg-deb -x "$f" "$W/x/$n" || die "cannot unpack $f"
	done
}
deb_of() {
	local n=$1 v=${VER[$1]} f
	v=${v//:/%3a}
	for f in "$CACHE/debs/${n}_${v}_"*.deb; do
		[ -s "$f" ] && { printf '%s\n' "$f"; return 0; }
	done
	return 0
}

fetch "$KPKG" "${TOP_PKGS[@]}"

R=$W/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,etc/acpi/PWRF,lib/modules,lib/x86_64-linux-gnu,lib64,var/lib,var/log,root}
ln -s ../run "$R/var/run"
chmod 1777 "$R/tmp"

# ---- kernel and modules
KX=$W/x/$KPKG
KVER=${KPKG#linux-image-}
[ -f "$KX/boot/vmlinuz-$KVER" ] || die "$KPKG has no /boot/vmlinuz-$KVER"
MODDIR=$KX/lib/modules/$KVER
[ -d "$MODDIR" ] || MODDIR=$KX/usr/lib/modules/$KVER
[ -d "$MODDIR/kernel" ] || die "$KPKG has no modules for $KVER"
# The package ships no modules.dep (depmod makes it when installed), so a
# module's dependencies come from its own modinfo "depends=" field.
find "$MODDIR/kernel" -name '*.ko*' >"$W/modfiles"

declare -A MODFILE # module name -> file under MODDIR ("" when built in)
loaded=" "
for m in "${MODULES[@]}"; do
	f=$(grep -E "/${m}\.ko(\.(xz|zst|gz))?\$" "$W/modfiles" | sed -n 1p || true)
	if [ -z "$f" ]; then
		grep -q "/${m}\.ko\$" "$MODDIR/modules.builtin" 2>/dev/null ||
			die "module $m is neither in $KPKG nor built into its kernel"
		log "module $m is built into the kernel"
		MODFILE[$m]=
		loaded+="$m "
		continue
	fi
	MODFILE[$m]=${f#"$MODDIR"/}
	ko=$R/lib/modules/$m.ko
	case $f in
	*.ko) cp "$f" "$ko" ;;
	*.ko.xz) need_cmd xz xz-utils; xz -dc "$f" >"$ko" ;;
	*.ko.zst) need_cmd zstd zstd; zstd -qdc "$f" >"$ko" ;;
	*.ko.gz) gzip -dc "$f" >"$ko" ;;
	esac
	tr '\0' '\n' <"$ko" | grep -ax "vermagic=$KVER .*" >/dev/null ||
		die "module $m is not built for kernel $KVER"
	# Every dependency must be loaded before it.
	deps=$(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p')
	for d in ${deps//,/ }; do
		d=${d//-/_}
		[[ $loaded == *" $d "* ]] ||
			die "module $m needs $d, which is not loaded before it (fix MODULES)"
	done
	loaded+="$m "
done

# ---- busybox
cp "$W/x/busybox-static/bin/busybox" "$R/bin/busybox"
for a in sh acpid poweroff insmod mount; do
	"$R/bin/busybox" --list | grep -x "$a" >/dev/null || die "busybox-static lacks the applet $a"
done

# ---- qemu-ga and the libraries ldd lists
GA=$W/x/qemu-guest-agent/usr/sbin/qemu-ga
[ -x "$GA" ] || die "qemu-guest-agent has no /usr/sbin/qemu-ga"
cp "$GA" "$R/usr/sbin/qemu-ga"

# in_root ROOT PATH: PATH with its symlinks followed inside ROOT.
in_root() {
	local root=$1 p=$2 t i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		if [ -L "$root$p" ]; then
			t=$(readlink "$root$p")
			case $t in /*) p=$t ;; *) p=$(dirname "$p")/$t ;; esac
		elif [ -e "$root$p" ]; then
			printf '%s\n' "$root$p"
			return 0
		else
			# A merged-/usr host names /lib what a package may ship in /usr/lib.
			case $p in
			/usr/*) [ -e "$root${p#/usr}" ] || [ -L "$root${p#/usr}" ] || return 1; p=${p#/usr} ;;
			/*) [ -e "$root/usr$p" ] || [ -L "$root/usr$p" ] || return 1; p=/usr$p ;;
			esac
		fi
	done
	return 1
}

# owner PATH: the host package that ships PATH (merged-/usr aware).
owner() {
	local p q
	for p in "$1" "$(readlink -f "$1")"; do
		for q in "$p" "${p#/usr}" "/usr$p"; do
			dpkg-query -S "$q" 2>/dev/null | sed -n '1s/:.*//p' | grep . && return 0
		done
	done
	return 1
}

# libfile SONAME-PATH: find it in the unpacked packages; echo "pkg file".
libfile() {
	local path=$1 n f
	for n in "${LIBPKGS[@]}"; do
		if f=$(in_root "$W/x/$n" "$path") ||
			f=$(in_root "$W/x/$n" "/lib/x86_64-linux-gnu/${path##*/}") ||
			f=$(in_root "$W/x/$n" "/usr/lib/x86_64-linux-gnu/${path##*/}"); then
			printf '%s %s\n' "$n" "$f"
			return 0
		fi
	done
	return 1
}

# ldd runs with the host's loader and libc, so it resolves to host paths;
# each one maps to the package that ships it, which is downloaded at the
# candidate version and unpacked, and the file is taken from there.  When
# a file is not in the unpacked package, the host copy is used only if the
# host has exactly that version installed.
ldd "$GA" >"$W/ldd.out" 2>&1 || die "ldd qemu-ga failed: $(cat "$W/ldd.out")"
if grep -q 'not found' "$W/ldd.out"; then
	die "qemu-ga needs libraries this host lacks: $(grep 'not found' "$W/ldd.out" | tr -s ' \t\n' ' ')
  (apt-get install qemu-guest-agent's library dependencies, or its direct
  Depends: $(apt-cache show --no-all-versions qemu-guest-agent | sed -n 's/^Depends: //p'))"
fi
LIBS=()
NEED=()
declare -A seen=()
while read -r a b c _; do
	case $b in
	"=>") p=$c ;;
	*) p=$a ;;
	esac
	case $p in /*) ;; *) continue ;; esac # linux-vdso.so.1
	LIBS+=("$p")
	o=$(owner "$p") || die "no host package ships $p"
	[ -n "${seen[$o]:-}" ] || { seen[$o]=1; NEED+=("$o"); }
done <"$W/ldd.out"
LIBPKGS=("${NEED[@]}")
resolve "${LIBPKGS[@]}"
fetch "${LIBPKGS[@]}"
for p in "${LIBS[@]}"; do
	if found=$(libfile "$p"); then
		f=${found#* }
		src="from ${found%% *} ${VER[${found%% *}]}"
	else
		o=$(owner "$p")
		iv=$(dpkg-query -W -f='${Version}' "$o" 2>/dev/null || true)
		[ "$iv" = "${VER[$o]}" ] ||
			die "$p is not in $o ${VER[$o]} and the host has $o ${iv:-not installed}"
		f=$(readlink -f "$p")
		src="from the host ($o $iv, identical)"
	fi
	case $p in
	/lib64/*) dst=$R$p ;;
	*) dst=$R/lib/x86_64-linux-gnu/${p##*/} ;;
	esac
	cp "$f" "$dst"
	echo "${p##*/} $src" >>"$W/libs"
done

# ---- /init and acpid's power button action
cat >"$R/init" <<EOF
#!/bin/busybox sh
# HyperSDK test guest (tests/guest/build.sh).
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
for m in ${MODULES[*]}; do
	[ -e /lib/modules/\$m.ko ] || continue
	insmod /lib/modules/\$m.ko || echo "hypersdk-guest: insmod \$m failed"
done
echo $MARKER >/dev/ttyS0
# The agent's port appears once QEMU answers virtio_console's control queue.
port=
i=0
while [ -z "\$port" ] && [ \$i -lt 200 ]; do
	for d in /sys/class/virtio-ports/*; do
		[ -r "\$d/name" ] || continue
		[ "\$(cat "\$d/name")" = org.qemu.guest_agent.0 ] && port=/dev/\${d##*/}
	done
	[ -n "\$port" ] && [ -e "\$port" ] || { port=; sleep 0.05; i=\$((i + 1)); }
done
acpid -c /etc/acpi -l /dev/null && echo "hypersdk-guest: acpid running"
if [ -n "\$port" ]; then
	qemu-ga -m virtio-serial -p "\$port" -d && echo "hypersdk-guest: qemu-ga on \$port"
else
	echo "hypersdk-guest: no virtio port org.qemu.guest_agent.0; no agent"
fi
while :; do sleep 3600; done
EOF
chmod 0755 "$R/init"
printf '#!/bin/sh\necho "hypersdk-guest: power button, powering off"\npoweroff -f\n' \
	>"$R/etc/acpi/PWRF/00000080"
chmod 0755 "$R/etc/acpi/PWRF/00000080"
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"
echo 'root:x:0:' >"$R/etc/group"
if [ "$(id -u)" -eq 0 ]; then
	mknod -m 600 "$R/dev/console" c 5 1
	mknod -m 666 "$R/dev/null" c 1 3
	# The initramfs must run on its own: try it.
	chroot "$R" /bin/busybox true || die "busybox does not run in the initramfs"
	chroot "$R" /usr/sbin/qemu-ga --version >/dev/null 2>"$W/ga.err" ||
		die "qemu-ga does not run in the initramfs: $(cat "$W/ga.err")"
fi

# ---- assemble the cache entry
E=$CACHE/.new.$$
rm -rf "$E"
mkdir -p "$E"
cp "$KX/boot/vmlinuz-$KVER" "$E/vmlinuz"
(cd "$R" && find . -mindepth 1 | sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9 -n >"$E/initrd.img"
versions_file "$W/versions"
KEY=$(key_of "$W/versions")
{
	echo "# HyperSDK test guest $KEY, built $(date -u +%FT%TZ) by tests/guest/build.sh"
	echo "# kernel $KVER; cmdline console=ttyS0; marker $MARKER"
	echo "# packages (name version)"
	cat "$W/versions"
	echo "# libraries"
	cat "$W/libs"
	echo "# modules (load order)"
	for m in "${MODULES[@]}"; do echo "$m ${MODFILE[$m]:-built-in}"; done
} >"$E/manifest"
chmod 0755 "$E"
chmod 0644 "$E"/*
rm -rf "${CACHE:?}/$KEY"
mv "$E" "$CACHE/$KEY"
printf '%s\n' "${LIBPKGS[@]}" >"$CACHE/libpkgs"
printf '%s %s\n' "$FP" "$KEY" >"$CACHE/memo"

# Older builds go (hard links elsewhere keep working); so do unused debs.
for d in "$CACHE"/*/; do
	d=${d%/}
	case ${d##*/} in "$KEY" | debs) ;; *) [ -f "$d/manifest" ] && rm -rf "$d" ;; esac
done
keep=" "
for n in "${!VER[@]}"; do keep+="$(basename "$(deb_of "$n")") "; done
for f in "$CACHE"/debs/*.deb; do
	[ -e "$f" ] || continue
	[[ $keep == *" ${f##*/} "* ]] || rm -f "$f"
done

log "built $KEY in $((SECONDS - T0)) s: vmlinuz $(du -h "$CACHE/$KEY/vmlinuz" | cut -f1), initrd.img $(du -h "$CACHE/$KEY/initrd.img" | cut -f1)"
publish "$CACHE/$KEY"
