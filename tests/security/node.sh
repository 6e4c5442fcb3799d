#!/usr/bin/env bash
# What the node trusts: the state, pool and kernel folders must be root's
# alone, and kernelBoot reads only root's files in the kernel folder.  Each
# refusal names the rule, changes nothing and leaks nothing.
. "$(dirname "$0")/../fs/lib.sh"

w() { "$ONEWRITE" "$@"; }
mounted() { grep -q " $M fuse" /proc/mounts; }

# try_start DESC REGEX ARGS...: the daemon must refuse to start, naming why.
try_start() {
	local desc=$1 re=$2 rc
	shift 2
	mkdir -p "$M"
	: >"$T/refused.log"
	timeout 20 "$MOUNTD" --foreground --mount "$M" --node "$NODE" "$@" \
		>"$T/refused.log" 2>&1
	rc=$?
	check "$desc: refused (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 124
	like "$desc: says why" "$(cat "$T/refused.log")" "$re"
	check "$desc: nothing mounted" bash -c "! grep -q ' $M fuse' /proc/mounts"
}

# ---- folders --------------------------------------------------------------
mkdir -p "$T/open" && chmod 777 "$T/open"
try_start "a world-writable state folder" "--state-dir $T/open: .*written by everyone" \
	--state-dir "$T/open" --pool-dir "$T/p1"
check "no log file made in it" test ! -e "$T/open/mountd.log"
mkdir -p "$T/grp" && chmod 775 "$T/grp"
try_start "a group-writable pool folder" "--pool-dir $T/grp: .*written by its group" \
	--state-dir "$T/s1" --pool-dir "$T/grp"
mkdir -p "$T/theirs" && chown nobody "$T/theirs"
try_start "a state folder owned by nobody" "--state-dir $T/theirs: .*belongs to uid" \
	--state-dir "$T/theirs" --pool-dir "$T/p2"
mkdir -p "$T/wide/state" && chmod 777 "$T/wide"
try_start "a state folder under a world-writable one" "$T/wide can be written by everyone" \
	--state-dir "$T/wide/state" --pool-dir "$T/p3"
ln -s "$T/open" "$T/link"
try_start "a symlink to a world-writable folder" "$T/open.*written by everyone" \
	--state-dir "$T/link" --pool-dir "$T/p4"
try_start "a relative kernel folder" "must be absolute" \
	--state-dir "$T/s5" --pool-dir "$T/p5" --kernel-dir kernels
mkdir -p "$T/kopen" && chmod 757 "$T/kopen"
try_start "a world-writable kernel folder" "--kernel-dir $T/kopen" \
	--state-dir "$T/s6" --pool-dir "$T/p6" --kernel-dir "$T/kopen"

# ---- kernelBoot -----------------------------------------------------------
start_mountd || { not_ok "daemon starts"; done_testing; }
K=$STATE/kernels
is "standalone: the default kernel folder is made, root's, 0755" \
	"$(stat -c '%U %a' "$K")" "root 755"
v=${P}k
is "a VM to boot" "$(w "$M/vms/ctl" "create $v memory=64Mi disk=64Mi")" ok
shadow_stat() { stat -c '%u:%g %a %s %Y' /etc/shadow; }
before_shadow=$(shadow_stat)
snap() { cat "$M/vms/$v/spec"; "${VIRSH[@]}" dumpxml "$v" 2>/dev/null | grep -v '<uuid>' | md5sum; }
before=$(snap)

kspec() {
	printf 'cpus: 1\nmemory: 64Mi\ndisks:\n- name: root\n  size: 64Mi\nkernelBoot:\n  kernel: %s\n' "$1"
	[ -z "${2:-}" ] || printf '  initrd: %s\n' "$2"
}
# refused DESC KERNEL [INITRD]: EACCES, err names the rule, nothing changed.
refused() {
	is "$1: EACCES" "$(w "$M/vms/$v/spec" "$(kspec "$2" "${3:-}")")" EACCES
	like "$1: err names the rule" "$(cat "$M/vms/$v/err")" "kernelBoot.*(not a file under $K|only root can write|is off)"
	is "$1: spec and domain unchanged" "$(snap)" "$before"
}
refused "kernel /etc/shadow" /etc/shadow
refused "kernel ../ out of the folder" "$K/../../../../etc/shadow"
ln -s /etc/shadow "$K/evil"
refused "a symlink in the folder to /etc/shadow" "$K/evil"
printf 'x' >"$K/theirs" && chown nobody "$K/theirs"
refused "a kernel owned by nobody" "$K/theirs"
printf 'x' >"$K/wide" && chmod 666 "$K/wide"
refused "a world-writable kernel" "$K/wide"
printf 'x' >"$K/vmlinuz"
refused "a good kernel with initrd /etc/shadow" "$K/vmlinuz" /etc/shadow
mkdir "$K/sub"
refused "a folder as kernel" "$K/sub"
is "/etc/shadow untouched (owner, mode, size, time)" "$(shadow_stat)" "$before_shadow"
check "libvirt never saw it" bash -c "! grep -rl /etc/shadow /etc/libvirt/qemu/ 2>/dev/null | grep -q ."

is "root's kernel in the folder is accepted" "$(w "$M/vms/$v/spec" "$(kspec "$K/vmlinuz")")" ok
like "the domain boots that file" "$("${VIRSH[@]}" dumpxml "$v")" "<kernel>$K/vmlinuz</kernel>"
ln -s vmlinuz "$K/current"
is "a link inside the folder is followed" "$(w "$M/vms/$v/spec" "$(kspec "$K/current")")" ok
like "the domain names the file, not the link" "$("${VIRSH[@]}" dumpxml "$v")" "<kernel>$K/vmlinuz</kernel>"
stop_mountd

K=$T/none-such-yet
start_mountd --kernel-dir "$K"
check "--kernel-dir is made when missing" test -d "$K"
before=$(snap)
refused "once the node names another folder, the old one's kernel" "$STATE/kernels/vmlinuz"
done_testing
