# A bare Debian 12 machine to try the README's commands on: a root file
# system in a mount namespace of its own (pivot_root, not chroot: libvirt
# enters QEMU's mount namespace for some steps, which resets a chroot),
# with a network namespace of its own for the daemons.  Sourced by
# tests/fresh/fresh.sh, which makes and uses one, and by tests/sweep.sh,
# which removes one that a killed run left.
#
# A machine is a folder W (/var/tmp/hsdk-fresh.*):
#   W/root   its file system;
#   W/ns     a private mount holding the namespace files mnt and net,
#            which keep both namespaces alive between steps;
#   W/owner  the pid of the test that made it (for tests/sweep.sh).
# Per host, under FRESH_CACHE (default /var/cache/hypersdk/fresh):
#   bookworm-apt.tar  the root made by mmdebstrap --variant=apt (with
#                  mount, which every Debian has: the root unmounts the
#                  host's file system from itself), remade when older than
#                  30 days or deleted;
#   apt-archives/  the root's /var/cache/apt/archives and
#   apt-lists/     its /var/lib/apt/lists, so a warm run downloads no
#                  package (the host's own archive cache is emptied after
#                  every install by the machine image's apt hook);
#   npm/           the root's npm cache.
FRESH_CACHE=${FRESH_CACHE:-/var/cache/hypersdk/fresh}
FRESH_TAR=$FRESH_CACHE/bookworm-apt.tar
FRESH_MAX_AGE_DAYS=30
FRESH_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# The host's Debian sources; FRESH_SOURCES overrides (a sources file, or a
# mirror URL).
# shellcheck source=scripts/debian-sources.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/debian-sources.sh"

# fresh_tarball: make or reuse the cached root tarball (serialised by a
# lock, since two runs may want it at once).
fresh_tarball() {
	local src
	mkdir -p "$FRESH_CACHE"
	(
		flock 8
		if [ -s "$FRESH_TAR" ] &&
			[ -z "$(find "$FRESH_TAR" -mtime +"$FRESH_MAX_AGE_DAYS")" ]; then
			exit 0
		fi
		src=$(debian_sources "${FRESH_SOURCES:-}")
		mmdebstrap --quiet --variant=apt --format=tar \
			--include=ca-certificates,mount bookworm "$FRESH_TAR.new" \
			${src:+"$src"} && mv "$FRESH_TAR.new" "$FRESH_TAR"
	) 8>"$FRESH_CACHE/tarball.lock"
}

# fresh_make W: unpack the root and start the machine's namespaces.
# Package scripts may not start services (policy-rc.d), as on a machine
# without systemd: the run command starts libvirtd itself.
fresh_make() {
	local w=$1 r=$1/root
	mkdir -p "$r" "$w/ns" "$FRESH_CACHE/apt-archives/partial" \
		"$FRESH_CACHE/apt-lists/partial" "$FRESH_CACHE/npm" || return 1
	tar -xf "$FRESH_TAR" -C "$r" || return 1
	mkdir -p "$r/root/.npm"
	printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
	chmod 755 "$r/usr/sbin/policy-rc.d"
	cp /etc/resolv.conf "$r/etc/resolv.conf"
	# The host's own trust anchors (a site's proxy CA) are part of a
	# machine of this site; they take effect below.
	cp -r /usr/local/share/ca-certificates/. "$r/usr/local/share/ca-certificates/" 2>/dev/null
	mount --bind "$w/ns" "$w/ns" && mount --make-private "$w/ns" &&
		touch "$w/ns/mnt" "$w/ns/net" || return 1
	unshare --net="$w/ns/net" true &&
		nsenter --net="$w/ns/net" ip link set lo up || return 1
	unshare --mount="$w/ns/mnt" --propagation private /bin/bash -c \
		"$(declare -f fresh_devices fresh_boot); fresh_boot '$r' '$FRESH_CACHE'" &&
		nsenter --mount="$w/ns/mnt" -- /usr/bin/env -i PATH="$FRESH_PATH" \
			update-ca-certificates
}

# fresh_boot ROOT CACHE (in the new mount namespace): mount what a booted
# machine has, then make ROOT the namespace's /.  /dev is a tmpfs of its
# own with the host's character devices made anew, not a bind of the
# host's /dev: the root's scripts chgrp /dev/kvm to the root's own kvm
# group, which must not change the host's node.
fresh_boot() {
	local r=$1 cache=$2
	set -e
	mount --bind "$r" "$r"
	mount -t tmpfs -o mode=755,size=16m dev "$r/dev"
	fresh_devices "$r/dev"
	mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$r/dev/pts"
	mount -t tmpfs -o mode=1777 shm "$r/dev/shm"
	mount -t proc proc "$r/proc"
	mount --rbind /sys "$r/sys"
	mount -t tmpfs -o mode=755 run "$r/run"
	mount --bind "$cache/apt-archives" "$r/var/cache/apt/archives"
	mount --bind "$cache/apt-lists" "$r/var/lib/apt/lists"
	mount --bind "$cache/npm" "$r/root/.npm"
	cd "$r"
	mkdir -p .old
	pivot_root . .old
	umount -l /.old
	rmdir /.old
}

# fresh_devices DEV: the nodes a machine's /dev has, as the host has them
# (kvm 0600 root, as a fresh host ships it).  ptmx opens the devpts
# mounted beside it: the root's own instance.
fresh_devices() {
	local dev=$1 d mode
	mkdir -p "$dev/pts" "$dev/shm" "$dev/net"
	for d in null zero full random urandom tty ptmx kvm fuse net/tun vhost-net; do
		[ -c "/dev/$d" ] || continue
		mode=$(stat -c %a "/dev/$d")
		[ "$d" != kvm ] || mode=600
		mknod -m "$mode" "$dev/$d" c "$((16#$(stat -c %t "/dev/$d")))" \
			"$((16#$(stat -c %T "/dev/$d")))" || return 1
	done
	ln -s /proc/self/fd "$dev/fd" && ln -s fd/0 "$dev/stdin" &&
		ln -s fd/1 "$dev/stdout" && ln -s fd/2 "$dev/stderr"
}

# fresh_pids W: the machine's processes: those in its mount namespace or
# in its network namespace (QEMU runs in a mount namespace libvirt makes).
fresh_pids() {
	local w=$1 mnt net p
	mnt=$(stat -L -c %i "$w/ns/mnt" 2>/dev/null) || return 0
	net=$(stat -L -c %i "$w/ns/net" 2>/dev/null) || return 0
	[ "$mnt" != 0 ] && [ "$net" != 0 ] || return 0
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "mnt:[$mnt]" ] ||
			[ "$(readlink "$p/ns/net" 2>/dev/null)" = "net:[$net]" ] ||
			continue
		echo "${p#/proc/}"
	done
}

# fresh_remove W: stop every process of the machine by pid, release its
# namespaces (their mounts go with them), then delete it without
# crossing into anything still mounted.
fresh_remove() {
	local w pids m i
	w=$(readlink -f "$1")
	[ -d "$w" ] || return 0
	for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
		pids=$(fresh_pids "$w")
		[ -n "$pids" ] || break
		# shellcheck disable=SC2086
		if [ "$i" -le 10 ]; then kill -TERM $pids 2>/dev/null; else kill -KILL $pids 2>/dev/null; fi
		sleep 0.5
	done
	while read -r m; do
		umount -l "$m" 2>/dev/null
	done < <(awk -v w="$w" 'index($2, w "/") == 1 {print $2}' /proc/mounts | sort -r)
	if grep -q " $w/" /proc/mounts; then
		echo "fresh: $w: still mounted, not removed" >&2
		return 1
	fi
	rm -rf --one-file-system "$w"
}

# A login's clean environment: nothing of the caller's leaks in but the
# site's CA bundle for Node.js, which npm needs behind this site's proxy.
fresh_env() {
	echo HOME=/root LANG=C.UTF-8 TERM=dumb PATH="$FRESH_PATH" \
		${NODE_EXTRA_CA_CERTS:+NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS}
}

# fresh_enter NSENTER-OPTION... -- CMD: a bash command line on the
# machine, in the clone, with fresh_env.
fresh_enter() {
	local opts=()
	while [ "$1" != -- ]; do opts+=("$1"); shift; done
	shift
	# shellcheck disable=SC2046
	nsenter "${opts[@]}" -- /usr/bin/env -i $(fresh_env) \
		/bin/bash -c "cd /root/hypersdk && $*"
}

# fresh_in W CMD: with the host's network (for apt and npm).
fresh_in() { fresh_enter --mount="$1/ns/mnt" -- "${@:2}"; }

# fresh_in_netns W CMD: in the machine's own network namespace, as on a
# machine of its own: the host's libvirt network, bridges and ports are
# not in the way.  Daemons started there stay in it.
fresh_in_netns() { fresh_enter --mount="$1/ns/mnt" --net="$1/ns/net" -- "${@:2}"; }
