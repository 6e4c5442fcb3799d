#!/usr/bin/env bash
# Full clone of a stopped VM through ctl (`clone NAME`, one 256 MiB disk
# holding 200 MiB of non-zero data) against `qemu-img convert -O qcow2`
# of the same disk, alternating, several rounds (the clones are deleted
# between rounds).  Prints the ratio of the medians, and the linked
# clone's time (`clone NAME linked`) and the daemon's own qemu-img
# command alone as diagnostics.
. "$(dirname "$0")/../fs/lib.sh"
ROUNDS=${BENCH_ROUNDS:-3}

start_mountd || { not_ok "daemon starts"; done_testing; }
v=${P}src
w() { "$ONEWRITE" "$@"; }
SRC=$POOL/${v}_root.qcow2
DST=$T/convert.qcow2

is "create a stopped VM with a 256 MiB disk" \
	"$(w "$M/vms/ctl" "create $v cpus=1 memory=64Mi disk=256Mi")" ok
is "it is Stopped" "$(phase "$v")" Stopped
# Non-zero data, so both copies have something to copy (zero clusters
# cost nothing).
if out=$(qemu-io -f qcow2 -c 'write -P 0x5a 0 200M' "$SRC" 2>&1); then
	ok "200 MiB of 0x5a written into $(basename "$SRC")"
else
	not_ok "qemu-io writes into the volume" "$out"; done_testing
fi
"${VIRSH[@]}" pool-refresh "hypersdk-$NODE" >/dev/null 2>&1
alloc=$(qemu-img info -U --output=json "$SRC" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["actual-size"] >> 20)')
like "the volume holds the data (${alloc} MiB allocated)" "$alloc" '^(2[0-9][0-9])$'
cat "$SRC" >/dev/null    # both copies read it from the page cache

median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
ms() { echo $((($2 - $1) / 1000000)); }
now() { date +%s%N; }
# gone NAME: out of the tree, libvirt and the pool directory
gone() { [ ! -e "$M/vms/$1" ] && [ "$(domstate "$1")" = "" ] &&
	[ ! -e "$POOL/${1}_root.qcow2" ]; }
clone_times=()
convert_times=()
own_times=()
linked_times=()
fail=0
for ((i = 0; i < ROUNDS && !fail; i++)); do
	c=${P}full$i
	t0=$(now); r=$(w "$M/vms/$v/ctl" "clone $c"); t1=$(now)
	[ "$r" = ok ] || { not_ok "round $i: clone $c" "got '$r': $(cat "$M/vms/$v/err")"; fail=1; break; }
	clone_times+=("$(ms "$t0" "$t1")")
	if [ "$i" -eq 0 ]; then
		is "the full clone is Stopped" "$(phase "$c")" Stopped
		check "its disk has the source's contents (qemu-img compare)" \
			qemu-img compare -U -q "$SRC" "$POOL/${c}_root.qcow2"
		check "and no backing file" bash -c "! qemu-img info -U '$POOL/${c}_root.qcow2' | grep -q '^backing file'"
	fi
	r=$(w "$M/vms/$c/ctl" delete)
	[ "$r" = ok ] && wait_for 10 gone "$c" ||
		{ not_ok "round $i: delete $c" "got '$r'"; fail=1; break; }

	rm -f "$DST"
	t0=$(now)
	out=$(qemu-img convert -O qcow2 "$SRC" "$DST" 2>&1) ||
		{ not_ok "round $i: qemu-img convert" "$out"; fail=1; break; }
	t1=$(now)
	convert_times+=("$(ms "$t0" "$t1")")
	rm -f "$DST"
	# The daemon's own copy command (docs/backend-operations.md), to tell
	# the copy from the rest of a clone (define, seed, pool refresh).
	t0=$(now)
	out=$(qemu-img convert -U -O qcow2 -o compat=1.1 "$SRC" "$DST" 2>&1) ||
		{ not_ok "round $i: qemu-img convert -U -o compat=1.1" "$out"; fail=1; break; }
	t1=$(now)
	own_times+=("$(ms "$t0" "$t1")")
	rm -f "$DST"

	l=${P}linked$i
	t0=$(now); r=$(w "$M/vms/$v/ctl" "clone $l linked"); t1=$(now)
	[ "$r" = ok ] || { not_ok "round $i: clone $l linked" "got '$r': $(cat "$M/vms/$v/err")"; fail=1; break; }
	linked_times+=("$(ms "$t0" "$t1")")
	if [ "$i" -eq 0 ]; then
		like "the linked clone's disk is an overlay on the source's" \
			"$(qemu-img info -U "$POOL/${l}_root.qcow2" | awk -F': ' '/^backing file:/ { print $2 }')" \
			"${v}_root.qcow2"
	fi
	r=$(w "$M/vms/$l/ctl" delete)
	[ "$r" = ok ] && wait_for 10 gone "$l" ||
		{ not_ok "round $i: delete $l" "got '$r'"; fail=1; break; }
done
[ $fail -eq 0 ] && ok "$ROUNDS rounds: full clone, qemu-img convert, linked clone, each deleted"
is "delete the source" "$(w "$M/vms/$v/ctl" delete)" ok
check "it is gone with its volume" wait_for 10 gone "$v"

if [ ${#clone_times[@]} -gt 0 ] && [ ${#convert_times[@]} -gt 0 ]; then
	c=$(printf '%s\n' "${clone_times[@]}" | median)
	q=$(printf '%s\n' "${convert_times[@]}" | median)
	echo "# full clone times (ms): ${clone_times[*]}"
	echo "# qemu-img convert times (ms): ${convert_times[*]}"
	echo "# the daemon's copy alone (qemu-img convert -U -O qcow2 -o compat=1.1) median $(printf '%s\n' "${own_times[@]}" | median) ms (times: ${own_times[*]})"
	check "full clone median ${c} ms, qemu-img convert median ${q} ms (${#clone_times[@]} rounds)" \
		test "$c" -gt 0 -a "$q" -gt 0
	echo "# RATIO full-clone/qemu-img-convert $(awk -v a="$c" -v b="$q" 'BEGIN{printf "%.2f", a/b}') (target <= 1.2)"
fi
if [ ${#linked_times[@]} -gt 0 ]; then
	echo "# linked clone (clone NAME linked) median $(printf '%s\n' "${linked_times[@]}" | median) ms (times: ${linked_times[*]})"
fi
done_testing
