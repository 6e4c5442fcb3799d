#!/usr/bin/env bash
# Reading status: in a process against libfuse's hello_ll (the FUSE floor)
# and tmpfs, and `cat status` in a shell against `virsh domstate`.
# Prints ratios from one run; fails only when something is broken.
. "$(dirname "$0")/../fs/lib.sh"
READLOOP=$BUILD/tests/bench/readloop
N=${BENCH_N:-20000}

# hello_ll from Debian's libfuse3-dev examples, built here, not kept.
hello=/usr/share/doc/libfuse3-dev/examples/hello_ll.c
check "build libfuse's hello_ll example" \
	gcc -O2 -o "$T/hello_ll" "$hello" $(pkg-config --cflags --libs fuse3)
mkdir -p "$T/hello" "$T/tmpfs"
"$T/hello_ll" "$T/hello" && ok "hello_ll mounted" || not_ok "hello_ll mounted"
mount -t tmpfs -o size=1m tmpfs "$T/tmpfs"
trap 'fusermount3 -u "$T/hello" 2>/dev/null; umount "$T/tmpfs" 2>/dev/null; cleanup' EXIT

start_mountd || { not_ok "daemon starts"; done_testing; }
v=${P}bench
"$ONEWRITE" "$M/vms/ctl" "create $v memory=64Mi disk=64Mi running=true" >/dev/null
is "a running VM" "$(phase "$v")" Running
cp "$M/vms/$v/status" "$T/tmpfs/status"

out=$("$READLOOP" "$N" "$M/vms/$v/status" "$T/hello/hello" "$T/tmpfs/status")
ours=$(awk 'NR==1{print $2}' <<<"$out")
hello_ns=$(awk 'NR==2{print $2}' <<<"$out")
tmpfs_ns=$(awk 'NR==3{print $2}' <<<"$out")
r1=$(awk -v a="$ours" -v b="$hello_ns" 'BEGIN{printf "%.2f", a/b}')
r2=$(awk -v a="$ours" -v b="$tmpfs_ns" 'BEGIN{printf "%.2f", a/b}')
check "in-process open/read/close of status: ${ours} ns, hello_ll ${hello_ns} ns, tmpfs ${tmpfs_ns} ns" test -n "$ours"
echo "# RATIO status/hello_ll $r1 (target <= 1.5)"
echo "# RATIO status/tmpfs $r2 (going further: <= 2)"

# The shell: cat status against virsh domstate, same VM, in alternating
# blocks so that load from elsewhere falls on both alike, and each block
# long enough that the clock reads (each a fork of date) do not count.
ROUNDS=${BENCH_ROUNDS:-10}
K=${BENCH_K:-20}
cat_ns=0
virsh_ns=0
for ((r = 0; r < ROUNDS; r++)); do
	t0=$(date +%s%N)
	for ((i = 0; i < K; i++)); do cat "$M/vms/$v/status" >/dev/null; done
	t1=$(date +%s%N)
	for ((i = 0; i < K / 4 + 1; i++)); do "${VIRSH[@]}" domstate "$v" >/dev/null; done
	t2=$(date +%s%N)
	cat_ns=$((cat_ns + (t1 - t0) / K))
	virsh_ns=$((virsh_ns + (t2 - t1) / (K / 4 + 1)))
done
cat_us=$((cat_ns / ROUNDS / 1000))
virsh_us=$((virsh_ns / ROUNDS / 1000))
check "cat status ${cat_us} us, virsh domstate ${virsh_us} us" test "$cat_us" -gt 0
echo "# RATIO virsh-domstate/cat-status $(awk -v a="$virsh_us" -v b="$cat_us" 'BEGIN{printf "%.1f", a/b}') (target >= 10)"
"$ONEWRITE" "$M/vms/$v/ctl" "stop force" >/dev/null
done_testing
