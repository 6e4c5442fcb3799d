#!/usr/bin/env bash
# Many VirtualMachine objects (1,000, then 5,000) on a real kube-apiserver,
# for a node that does not exist (so no domains are made), then a daemon
# in cluster mode started from nothing:
#   - time from daemon start to a synced tree (all directories in vms/),
#   - the daemon's RSS after the sync and after `ls -l`,
#   - `ls -l vms` against `ls -l` of a tmpfs directory with as many subdirs,
#   - watch latency at that scale (one more object until its directory shows),
#   - how fast a running daemon follows a burst of creates.
# The target (docs/benchmarks.md): with 1,000 VMs on a node, `ls -l vms`
# under 50 ms and the daemon's RSS under 64 MiB.
# Fails only when something is broken (a VM that never appears), never
# because the machine is slow.
#
#   BENCH_SMALL / BENCH_LARGE   the two sizes (default 1000 / 5000)
. "$(dirname "$0")/../k8s/lib.sh"
SMALL=${BENCH_SMALL:-1000}
LARGE=${BENCH_LARGE:-5000}
GHOST=no-such-node-$NODE
trap 'umount "$T/tmpfs" 2>/dev/null; umount "$T/statefs" 2>/dev/null; cluster_down; cleanup' EXIT

cluster_up
cluster_api

exec {NAPFD}<> <(:)
nap() { read -r -t "$1" -u "$NAPFD" _ || :; }
us() { local t=${EPOCHREALTIME/./}; NOW=$((10#$t)); }
ms_since() { us; echo $(((NOW - $1) / 1000)); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", (b > 0 ? a/b : 0)}'; }
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$MOUNTD_PID/status"; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
name() { printf '%s%05d' "$P" "$1"; }

# bulk FROM TO: create objects FROM..TO-1 with one curl process (HTTP/2,
# 16 in flight, one TLS connection); prints how many the server created.
bulk() {
	local i cfg=$T/bulk.cfg
	for ((i = $1; i < $2; i++)); do
		[ "$i" -gt "$1" ] && echo next
		printf 'url = "%s"\ncacert = "%s"\ncert = "%s"\nkey = "%s"\nrequest = "POST"\nheader = "Content-Type: application/json"\nsilent\nshow-error\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
			"$API" "$K8S_CA" "$K8S_CLIENT_CERT" "$K8S_CLIENT_KEY"
		printf 'data = "{\\"apiVersion\\":\\"hypersdk.io/v1alpha1\\",\\"kind\\":\\"VirtualMachine\\",\\"metadata\\":{\\"name\\":\\"%s\\"},\\"spec\\":{\\"cpus\\":1,\\"memory\\":\\"64Mi\\",\\"running\\":false,\\"disks\\":[{\\"name\\":\\"root\\",\\"size\\":\\"64Mi\\"}],\\"nodeSelector\\":{\\"hypersdk.io/node\\":\\"%s\\"}}}"\n' \
			"$(name "$i")" "$GHOST"
	done >"$cfg"
	curl --parallel --parallel-max 16 -K "$cfg" 2>>"$T/bulk.err" | grep -c '^201$'
}

count_tree() { ls -U "$M/vms" 2>/dev/null | grep -c "^$P[0-9]"; }
# wait_count N SECONDS: until the tree has N of our directories; polls
# every 50 ms (an `ls` of thousands of entries is not free).
wait_count() {
	local end=$((SECONDS + $2))
	while [ "$(count_tree)" -lt "$1" ]; do
		[ $SECONDS -lt $end ] || return 1
		nap 0.05
	done
}

# start_md STATE: like lib.sh's start_mountd, with a state dir of its own,
# and a daemon that does not come up is killed rather than left behind.
start_md() {
	local pid end=$((SECONDS + 60))
	mkdir -p "$M"
	"$MOUNTD" --foreground --mount "$M" --state-dir "$1" --pool-dir "$POOL" \
		--node "$NODE" --stop-timeout 3 --kubeconfig "$KC/kubeconfig" \
		--namespace default >>"$T/mountd.log" 2>&1 &
	pid=$!
	until [ -e "$M/vms/ctl" ]; do
		if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $end ]; then
			echo "# hypersdk-mountd did not come up in 60 s; last lines of its log:"
			tail -n 5 "$T/mountd.log" | sed 's/^/#   /'
			kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
			fusermount3 -uz "$M" 2>/dev/null
			return 1
		fi
		nap 0.01
	done
	MOUNTD_PID=$pid
}

# A tmpfs peer: the same names as directories.
mkdir -p "$T/tmpfs" "$T/statefs"
mount -t tmpfs -o size=64m tmpfs "$T/tmpfs"
mkdir -p "$T/tmpfs/vms"
tmpfs_fill() { # N
	local i
	for ((i = 0; i < $1; i++)); do printf '%s\n' "$T/tmpfs/vms/$(name "$i")"; done | xargs mkdir -p
}

# Daemon with no VMs: the baseline RSS.
start_md "$T/state0" ||
	{ not_ok "daemon starts in cluster mode"; done_testing; }
sleep 1
RSS0=$(rss_kib)
ok "daemon in cluster mode with no VMs: RSS $(mib "$RSS0") MiB"
stop_mountd

# measure N LABEL [STATEDIR]: a fresh daemon, from start to all N shown.
measure() {
	local n=$1 label=$2 state=${3:-$T/state-$2} t0 sync_ms mount_ms rss1 rss2 i t
	local -a ls_ms=() tm_ms=() watch_ms=()
	us; t0=$NOW
	start_md "$state" ||
		{ not_ok "$label: daemon starts"; return 1; }
	mount_ms=$(ms_since "$t0")
	if ! wait_count "$n" 240; then
		not_ok "$label: all $n VMs appear in the tree" "only $(count_tree) after 240 s"
		stop_mountd
		return 1
	fi
	sync_ms=$(ms_since "$t0")
	rss1=$(rss_kib)
	ok "$label: $n VMs in the tree ${sync_ms} ms after the daemon started (mounted after ${mount_ms} ms)"
	echo "# $label: daemon start to synced tree, $n VMs: $sync_ms ms ($(ratio "$sync_ms" "$n") ms/VM)"
	# ls -l: the first one after the sync, then the median of 5
	for ((i = 0; i < 6; i++)); do
		us; t=$NOW; ls -l "$M/vms" >/dev/null; ls_ms+=("$(ms_since "$t")")
		us; t=$NOW; ls -l "$T/tmpfs/vms" >/dev/null; tm_ms+=("$(ms_since "$t")")
	done
	rss2=$(rss_kib)
	is "$label: ls -l lists them all" "$(ls -l "$M/vms" | grep -c " $P[0-9]")" "$n"
	local first=${ls_ms[0]} warm tmw
	warm=$(median "${ls_ms[@]:1}")
	tmw=$(median "${tm_ms[@]:1}")
	echo "# $label: ls -l vms, $n VMs: first $first ms, then median $warm ms (all: ${ls_ms[*]}); tmpfs $tmw ms (all: ${tm_ms[*]})"
	echo "# RATIO ls-l-vms/ls-l-tmpfs-$n $(ratio "$warm" "$tmw")"
	echo "# $label: daemon RSS after sync $(mib "$rss1") MiB, after ls -l $(mib "$rss2") MiB" \
		"(no VMs: $(mib "$RSS0") MiB; $(awk -v a="$rss2" -v b="$RSS0" -v n="$n" 'BEGIN{printf "%.1f", (a-b)/n}') KiB/VM)"
	if [ "$n" = 1000 ]; then
		echo "# 1000 VMs: ls -l vms $warm ms (target < 50 ms), RSS $(mib "$rss2") MiB (target < 64 MiB)"
	fi
	# watch latency: 5 more objects, one at a time, each until its directory shows
	for ((i = 0; i < 5; i++)); do
		local w=${P}w$i
		us; t=$NOW
		printf '{"apiVersion":"hypersdk.io/v1alpha1","kind":"VirtualMachine","metadata":{"name":"%s"},"spec":{"memory":"64Mi","nodeSelector":{"hypersdk.io/node":"%s"}}}' "$w" "$GHOST" |
			api -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary @- "$API"
		local end=$((SECONDS + 30))
		until [ -d "$M/vms/$w" ] || [ $SECONDS -ge $end ]; do nap 0.002; done
		if [ -d "$M/vms/$w" ]; then watch_ms+=("$(ms_since "$t")"); else not_ok "$label: $w appears"; fi
	done
	echo "# $label: watch latency at $n VMs (from the create request, one curl, to the directory): median $(median "${watch_ms[@]}") ms (all: ${watch_ms[*]})"
	for ((i = 0; i < 5; i++)); do api -o /dev/null -X DELETE "$API/${P}w$i"; done
	wait_for 10 bash -c "! ls '$M/vms' | grep -q '^${P}w'"
	us; t=$NOW
	stop_mountd
	echo "# $label: daemon stop (SIGTERM to exit) $(ms_since "$t") ms"
}

# 1. SMALL objects, then a daemon from nothing
us; t0=$NOW
c=$(bulk 0 "$SMALL")
is "$SMALL VirtualMachines created ($(ms_since "$t0") ms, one curl, 16 in flight)" "$c" "$SMALL"
tmpfs_fill "$SMALL"
measure "$SMALL" "small"

# 2. a daemon running while the rest arrive in a burst
start_md "$T/state-burst" &&
	wait_count "$SMALL" 120
us; t0=$NOW
c=$(bulk "$SMALL" "$LARGE")
create_ms=$(ms_since "$t0")
is "$((LARGE - SMALL)) more created ($create_ms ms) while a daemon runs" "$c" "$((LARGE - SMALL))"
us; t1=$NOW
wait_count "$LARGE" 120
check "the running daemon shows all $LARGE" test "$(count_tree)" -eq "$LARGE"
echo "# burst: $((LARGE - SMALL)) creates in $create_ms ms ($(awk -v n=$((LARGE - SMALL)) -v t="$create_ms" 'BEGIN{printf "%.0f", n*1000/t}')/s);" \
	"the tree had them all $(ms_since "$t1") ms after the last create returned"
stop_mountd
tmpfs_fill "$LARGE"

# 3. LARGE objects, a daemon from nothing
measure "$LARGE" "large"

# 4. a daemon restarted over its state dir must not act on VMs that are not
# its own: it loads its store (a mirror of every VM of the namespace) before
# it is in cluster mode.  Checked with a copy of 5 of the stored objects, so
# that a broken daemon defines 5 domains on the shared libvirtd, not 5,000.
mkdir -p "$T/state-restart/vms"
cp "$T/state-large/vms/$(name 0).json" "$T/state-large/vms/$(name 1).json" \
	"$T/state-large/vms/$(name 2).json" "$T/state-large/vms/$(name 3).json" \
	"$T/state-large/vms/$(name 4).json" "$T/state-restart/vms/"
us; t0=$NOW
start_md "$T/state-restart" && wait_count "$LARGE" 240
echo "# restart (5 VMs in the state dir, $LARGE on the server): $(ms_since "$t0") ms to a full tree"
defined=$("${VIRSH[@]}" list --all --name | grep -c "^$P")
is "a restarted daemon defines no domain for VMs whose nodeSelector names another node" "$defined" 0
stop_mountd
for d in $("${VIRSH[@]}" list --all --name | grep "^$P"); do
	"${VIRSH[@]}" destroy "$d" >/dev/null 2>&1
	"${VIRSH[@]}" undefine --snapshots-metadata --nvram "$d" >/dev/null 2>&1 ||
		"${VIRSH[@]}" undefine "$d" >/dev/null 2>&1
done

# 5. where the sync time goes: the same from nothing with --state-dir on tmpfs
# (every object is written to the state dir with fsync on the watch thread)
mount -t tmpfs -o size=256m tmpfs "$T/statefs"
us; t0=$NOW
start_md "$T/statefs/s" &&
	wait_count "$LARGE" 240
echo "# diagnostic: start to synced tree, $LARGE VMs, --state-dir on tmpfs (fsync free): $(ms_since "$t0") ms"
stop_mountd

is "no domains were made" "$("${VIRSH[@]}" list --all --name | grep -c "^$P")" 0
done_testing
