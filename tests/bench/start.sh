#!/usr/bin/env bash
# `echo start > ctl` until Running against `virsh start` of the same
# domain, alternating, several rounds.  Prints the ratio of medians.
. "$(dirname "$0")/../fs/lib.sh"
ROUNDS=${BENCH_ROUNDS:-5}

start_mountd || { not_ok "daemon starts"; done_testing; }
v=${P}start
"$ONEWRITE" "$M/vms/ctl" "create $v memory=64Mi disk=64Mi" >/dev/null
is "a stopped VM" "$(phase "$v")" Stopped

median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
ms() { echo $((($2 - $1) / 1000000)); }
ctl_times=()
virsh_times=()
for ((i = 0; i < ROUNDS; i++)); do
	t0=$(date +%s%N); echo start > "$M/vms/$v/ctl"; t1=$(date +%s%N)
	ctl_times+=("$(ms "$t0" "$t1")")
	[ "$(phase "$v")" = Running ] || not_ok "round $i: Running after echo start"
	echo stop force > "$M/vms/$v/ctl"
	t0=$(date +%s%N); "${VIRSH[@]}" start "$v" >/dev/null; t1=$(date +%s%N)
	virsh_times+=("$(ms "$t0" "$t1")")
	wait_for 2 phase_is "$v" Running
	echo stop force > "$M/vms/$v/ctl"
done
c=$(printf '%s\n' "${ctl_times[@]}" | median)
s=$(printf '%s\n' "${virsh_times[@]}" | median)
check "echo start > ctl median ${c} ms, virsh start median ${s} ms (${ROUNDS} rounds)" test "$c" -gt 0
echo "# RATIO ctl-start/virsh-start $(awk -v a="$c" -v b="$s" 'BEGIN{printf "%.2f", a/b}') (target <= 1.1)"
done_testing
