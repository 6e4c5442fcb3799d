#!/usr/bin/env bash
# Scale on libvirt's test driver (issue 10): one real kube-apiserver and
# SCALE_NODES daemons in cluster mode as that many nodes, each on its own
# in-process test:///default driver (no QEMU: a "running" VM costs libvirt
# nothing, so what is measured is the daemons, the API server and the tree).
#   - SCALE_VMS VMs applied in SCALE_BATCHES batches (one curl process per
#     batch, HTTP/2, 16 in flight), pinned round-robin to the nodes with
#     nodeSelector hypersdk.io/node, running: true, 1Mi memory and disk;
#   - per batch: create -> Running p50/p99 as the API server shows it (a
#     watch of the bench's own stamps each VM's ADDED event and its first
#     event with status.phase Running), the same from the start of the
#     batch's POSTs, and the sync lag: how long after the API server's
#     last Running every node's tree shows the whole batch Running;
#   - an API server outage: it is stopped, some VMs of every node are
#     stopped through their owner's tree, it is started again; the time
#     until every outbox is empty, and that every change reached it;
#   - per node: daemon RSS and CPU time (/proc), API requests per minute
#     at rest by verb and resource, and the LISTs over the whole run (a
#     relist storm would show there), from the API server's audit log:
#     every daemon has a client certificate of its own (CN = its node);
#   - on one node's mount: ls -l vms and cat vms/*/status (every VM of the
#     namespace, since every node mirrors them all) and cat of the status
#     of the VMs it owns, against tmpfs with as many folders and files.
# Fails only when something is broken (a VM that never runs or never shows
# in a tree, an outbox that does not drain, a change lost, a daemon that
# dies), never because the machine is slow.
#
#   SCALE_VMS      VMs in all (default 200; the full size is 10000)
#   SCALE_NODES    daemons, one per node (default 10)
#   SCALE_BATCHES  batches (default 10)
#   SCALE_REST     seconds of the at-rest window (default 20; 60 from 2,000 VMs)
#   SCALE_KEEP     a folder to copy the logs into (audit log, daemons, watch)
#   SCALE_STATE_TMPFS=1  the daemons' state folders on tmpfs (a diagnostic:
#                  every watch event is written to the store with fsync)
. "$(dirname "$0")/../k8s/lib.sh"
VMS=${SCALE_VMS:-200}
NODES=${SCALE_NODES:-10}
BATCHES=${SCALE_BATCHES:-10}
if [ "$VMS" -ge 2000 ]; then REST=${SCALE_REST:-60}; else REST=${SCALE_REST:-20}; fi
[ "$BATCHES" -ge 1 ] && [ "$NODES" -ge 1 ] && [ "$VMS" -ge "$BATCHES" ] && [ "$VMS" -ge "$NODES" ] ||
	{ echo "# SCALE_VMS must be at least SCALE_BATCHES and SCALE_NODES"; exit 2; }
PER_BATCH=$(((VMS + BATCHES - 1) / BATCHES))
PER_NODE=$((VMS / NODES)) # at least; the first VMS % NODES nodes get one more

declare -a PIDS=() MNT=()
WATCH= DOG= TMPFS= STATEFS=
# Every daemon, then the cluster; lib.sh's cleanup removes $T.
stop_nodes() {
	local i
	for i in "${!PIDS[@]}"; do kill -TERM "${PIDS[$i]}" 2>/dev/null; done
	for i in "${!PIDS[@]}"; do wait "${PIDS[$i]}" 2>/dev/null; done
	for i in "${!MNT[@]}"; do fusermount3 -uz "${MNT[$i]}" 2>/dev/null; done
	PIDS=()
}
on_exit() {
	if [ -n "${SCALE_KEEP:-}" ]; then
		mkdir -p "$SCALE_KEEP" &&
			cp "$T"/*.log "$T"/*.err "$T"/watch.txt "$T"/*.counts "$KC"/*.log "$SCALE_KEEP/" 2>/dev/null
	fi
	[ -z "$DOG" ] || kill "$DOG" 2>/dev/null
	watch_stop
	stop_nodes
	[ -z "$TMPFS" ] || umount "$TMPFS" 2>/dev/null
	[ -z "$STATEFS" ] || umount "$STATEFS" 2>/dev/null
	if [ "$tap_failed" -gt 0 ]; then
		for f in "$T"/node*.log; do
			[ -f "$f" ] || continue
			echo "# ${f##*/}:"; grep -v ' debug: ' "$f" | tail -n 8 | sed 's/^/#   /'
		done
	fi
	apiserver_kill # its SIGTERM would wait for the watches (cluster.sh waits 10 s, then kills)
	cluster_down
	cleanup
}
trap on_exit EXIT

exec {NAPFD}<> <(:)
nap() { read -r -t "$1" -u "$NAPFD" _ || :; }
us() { local t=${EPOCHREALTIME/./}; NOW=$((10#$t)); }
ms_since() { us; echo $(((NOW - $1) / 1000)); }
# pct P < numbers: nearest-rank percentile
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END{i=int((p*NR+99)/100); if(i<1)i=1; print (NR ? a[i] : "-")}'; }
median() { printf '%s\n' "$@" | pct 50; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", (b > 0 ? a/b : 0)}'; }
mib() { awk -v k="$1" 'BEGIN{printf "%.1f", k/1024}'; }
nodename() { printf '%sn%02d' "$NODE" "$1"; }
# VM I of the run: pinned to node I % NODES, in batch I / PER_BATCH
vmname() { printf '%sn%02d-b%02d-%05d' "$P" $(($1 % NODES)) $(($1 / PER_BATCH)) "$1"; }
# the same into VAR, without a fork: vmname_v VAR I
vmname_v() { printf -v "$1" '%sn%02d-b%02d-%05d' "$P" $(($2 % NODES)) $(($2 / PER_BATCH)) "$2"; }
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/${PIDS[$1]}/status" 2>/dev/null; }
# CPU time (user+system) in ms
cpu_ms() {
	awk -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); print int(($12 + $13) * 1000 / hz)}' \
		"/proc/${PIDS[$1]}/stat" 2>/dev/null
}
# self_status I KEY: a key of node I's own nodes/NODE/status
self_status() { awk -v k="$2" '$1 == k {print $2}' "${MNT[$1]}/nodes/$(nodename "$1")/status" 2>/dev/null; }
outbox() { local n; n=$(self_status "$1" outbox); echo "${n:--1}"; }
# apiserver_kill: the outage.  SIGKILL, a crash: on SIGTERM kube-apiserver
# stops listening at once but exits only when the daemons' watches end
# (timeoutSeconds up to 59 s), so cluster.sh's stop-apiserver spends 10 s
# and more before it kills it anyway.
apiserver_kill() {
	local p
	p=$(cat "$KC/kube-apiserver.pid" 2>/dev/null) || return 0
	tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "$KC/pki" || return 0
	kill -KILL "$p"
	while [ -e "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ]; do nap 0.02; done
}
# audit_requests FROM TO [timed]: "USER VERB RESOURCE[/SUBRESOURCE]" for
# each request in the audit log's bytes FROM..TO (a watch when it starts,
# anything else when it ends); timed adds "NAME RECEIVED DONE", the times
# in seconds of the (UTC) day.  awk rather than jq: the log of the full
# size is close to 100 MB, and its keys come in a fixed order.
audit_requests() {
	tail -c +$(($1 + 1)) "$AUDIT" | head -c $(($2 - $1)) | awk -v timed="${3:-}" '
		function val(k) {
			if (!match($0, "\"" k "\":\"[^\"]*\"")) return ""
			return substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 5)
		}
		function sod(t) { return substr(t, 12, 2) * 3600 + substr(t, 15, 2) * 60 + substr(t, 18, 9) }
		{
			st = val("stage"); v = val("verb")
			if (v == "watch" ? st != "ResponseStarted" : st != "ResponseComplete") next
			r = val("resource"); sr = val("subresource")
			if (timed == "")
				print val("username"), v, (r == "" ? "-" : r) (sr == "" ? "" : "/" sr)
			else
				printf "%s %s %s %s %.6f %.6f\n", val("username"), v, (r == "" ? "-" : r) (sr == "" ? "" : "/" sr),
					(val("name") == "" ? "-" : val("name")), sod(val("requestReceivedTimestamp")), sod(val("stageTimestamp"))
		}'
}
# a whole-namespace GET: thousands of objects take longer than api's 10 s
api_list() {
	curl -sS --max-time 300 --cacert "$K8S_CA" --cert "$K8S_CLIENT_CERT" \
		--key "$K8S_CLIENT_KEY" "$API"
}

# ---- the API server, with an audit log of the nodes' requests only ----
# Each daemon gets a client certificate in the group hypersdk-bench-nodes,
# CN its node's name, so the log says which node asked; its status PATCHes
# are logged with their bodies.
cat >"$T/audit.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Request
  userGroups: [hypersdk-bench-nodes]
  verbs: [patch]
  resources:
  - group: hypersdk.io
    resources: [virtualmachines/status]
- level: Metadata
  userGroups: [hypersdk-bench-nodes]
- level: None
EOF
AUDIT=$T/audit.log
export HYPERSDK_K8S_APISERVER_ARGS="--audit-policy-file=$T/audit.yaml --audit-log-path=$AUDIT --audit-log-maxsize=0 --audit-log-maxbackup=0"
us; T0=$NOW
cluster_up
cluster_api
echo "# cluster up and CRDs installed in $(ms_since "$T0") ms"

node_credentials() { # I: a key, a certificate signed by the cluster's CA, a kubeconfig
	local d=$T/n$1
	openssl ecparam -name prime256v1 -genkey -noout -out "$d.key" 2>/dev/null &&
		openssl req -new -key "$d.key" -out "$d.csr" 2>/dev/null \
			-subj "/O=system:masters/O=hypersdk-bench-nodes/CN=$(nodename "$1")" &&
		printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$d.ext" &&
		openssl x509 -req -in "$d.csr" -CA "$K8S_CA" -CAkey "$KC/pki/ca.key" \
			-CAcreateserial -sha256 -days 2 -extfile "$d.ext" -out "$d.crt" 2>/dev/null || return 1
	cat >"$d.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster:
    server: $APISERVER_URL
    certificate-authority: $K8S_CA
users:
- name: $(nodename "$1")
  user:
    client-certificate: $d.crt
    client-key: $d.key
contexts:
- name: bench
  context:
    cluster: bench
    user: $(nodename "$1")
    namespace: default
current-context: bench
EOF
}

# ---- the nodes ----
# A daemon left behind by a bench killed with SIGKILL (no EXIT trap) would
# keep its mount alive, which tests/sweep.sh leaves alone: a watchdog in a
# session of its own stops them once this shell is gone.
watchdog() { # OWNER-PID
	local p
	while kill -0 "$1" 2>/dev/null; do sleep 1; done
	for p in $(cat "$T/pids" 2>/dev/null); do
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "--mount $T/" && kill -TERM "$p"
	done
	sleep 3
	for p in $(cat "$T/pids" 2>/dev/null); do
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -qF -- "--mount $T/" && kill -KILL "$p"
	done
	for p in "$T"/m*; do fusermount3 -uz "$p" 2>/dev/null; done
}

for ((i = 0; i < NODES; i++)); do
	node_credentials "$i" || { not_ok "node $i: client certificate"; done_testing; }
done
SD=$T
if [ -n "${SCALE_STATE_TMPFS:-}" ]; then
	mkdir -p "$T/statefs" && mount -t tmpfs -o size=8g tmpfs "$T/statefs" && STATEFS=$T/statefs SD=$T/statefs
	echo "# the state folders are on tmpfs"
fi
us; T0=$NOW
for ((i = 0; i < NODES; i++)); do
	MNT[$i]=$T/m$(printf %02d "$i")
	mkdir -p "${MNT[$i]}"
	# debug: "start NAME: define N ms, start N ms, refresh N ms, persist N ms"
	"$MOUNTD" --foreground --mount "${MNT[$i]}" --state-dir "$SD/s$i" --pool-dir "$T/p$i" \
		--node "$(nodename "$i")" --libvirt test:///default --stop-timeout 3 \
		--kubeconfig "$T/n$i.kubeconfig" --namespace default --http 127.0.0.1:0 \
		--log-level debug >>"$T/node$i.log" 2>&1 &
	PIDS[$i]=$!
done
echo "${PIDS[*]}" >"$T/pids"
(
	exec </dev/null >/dev/null 2>&1
	exec setsid bash -c "$(declare -f watchdog); T='$T'; watchdog $$"
) &
DOG=$!
up=0
for ((i = 0; i < NODES; i++)); do
	end=$((SECONDS + 60))
	until [ -e "${MNT[$i]}/vms/ctl" ] || ! kill -0 "${PIDS[$i]}" 2>/dev/null || [ $SECONDS -ge $end ]; do
		nap 0.05
	done
	if [ -e "${MNT[$i]}/vms/ctl" ]; then
		up=$((up + 1))
	else
		echo "# node $i did not mount; its log:"; tail -n 5 "$T/node$i.log" | sed 's/^/#   /'
	fi
done
is "$NODES daemons mounted, each on its own test:///default ($(ms_since "$T0") ms)" "$up" "$NODES"
[ "$up" = "$NODES" ] || done_testing
# every node's lease, as every tree shows them
wait_for 30 bash -c "[ \$(ls '${MNT[0]}/nodes' | wc -l) -ge $NODES ]"
is "node 0's tree lists the $NODES nodes" "$(ls "${MNT[0]}/nodes" | grep -c "^${NODE}n")" "$NODES"
for ((i = 0; i < NODES; i++)); do
	RSS0[$i]=$(rss_kib "$i")
	HTTP[$i]=$(sed -n 's|.*dashboard on http://\([0-9.:]*\)/.*|\1|p' "$T/node$i.log" | tail -n 1)
done
echo "# daemon RSS with no VMs: median $(mib "$(median "${RSS0[@]}")") MiB"

# ---- the bench's own watch: a stamp for each ADDED and each Running ----
# Lines "TIME A|R NAME RV".  The API server drops a watcher that falls
# behind (this one runs niced on a busy machine): it goes on from the last
# resourceVersion it printed, and says how often it had to.
mkfifo "$T/watch.fifo"
: >"$T/watch.txt"
watch_loop() {
	local rv= cpid
	# (and ends with this shell: a bench killed with SIGKILL runs no trap)
	while [ ! -e "$T/watch.stop" ] && kill -0 $$ 2>/dev/null; do
		curl -sSN --cacert "$K8S_CA" --cert "$K8S_CLIENT_CERT" --key "$K8S_CLIENT_KEY" \
			"$API?watch=1&timeoutSeconds=86400${rv:+&resourceVersion=$rv}" >"$T/watch.fifo" 2>>"$T/watch.err" &
		cpid=$!
		echo "$cpid" >"$T/watch.curl"
		jq -r --unbuffered 'if .type == "ADDED" then "\(now) A \(.object.metadata.name) \(.object.metadata.resourceVersion)"
			elif .object.status.phase == "Running" then "\(now) R \(.object.metadata.name) \(.object.metadata.resourceVersion)"
			else empty end' <"$T/watch.fifo" >>"$T/watch.txt" 2>>"$T/watch-jq.err"
		wait "$cpid"
		[ -e "$T/watch.stop" ] && break
		echo "$EPOCHREALTIME" >>"$T/watch.restarts"
		rv=$(tail -n 1 "$T/watch.txt" | awk '{print $4}')
		sleep 0.2
	done
}
watch_loop &
WATCH=$!
watch_stop() {
	[ -n "$WATCH" ] || return 0
	touch "$T/watch.stop"
	kill "$(cat "$T/watch.curl" 2>/dev/null)" 2>/dev/null
	wait "$WATCH" 2>/dev/null
	WATCH=
}

# bulk FROM TO: POST VMs FROM..TO-1 with one curl process (HTTP/2, 16 in
# flight); prints how many the server created.
bulk() {
	local i cfg=$T/bulk.cfg n
	for ((i = $1; i < $2; i++)); do
		vmname_v n "$i"
		[ "$i" -gt "$1" ] && echo next
		printf 'url = "%s"\ncacert = "%s"\ncert = "%s"\nkey = "%s"\nrequest = "POST"\nheader = "Content-Type: application/json"\nsilent\nshow-error\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
			"$API" "$K8S_CA" "$K8S_CLIENT_CERT" "$K8S_CLIENT_KEY"
		printf 'data = "{\\"apiVersion\\":\\"hypersdk.io/v1alpha1\\",\\"kind\\":\\"VirtualMachine\\",\\"metadata\\":{\\"name\\":\\"%s\\"},\\"spec\\":{\\"cpus\\":1,\\"memory\\":\\"1Mi\\",\\"running\\":true,\\"disks\\":[{\\"name\\":\\"root\\",\\"size\\":\\"1Mi\\"}],\\"nodeSelector\\":{\\"hypersdk.io/node\\":\\"%s\\"}}}"\n' \
			"$n" "$NODE$(printf 'n%02d' $((i % NODES)))"
	done >"$cfg"
	curl --parallel --parallel-max 16 -K "$cfg" 2>>"$T/bulk.err" | grep -c '^201$'
}

# batch_times B T0: "NAME CREATE_MS BATCH_MS" for each VM of batch B that
# the watch saw Running: from its ADDED event, and from T0 (the batch's
# first POST, $EPOCHREALTIME).
batch_times() {
	awk -v re="^${P}n[0-9]+-b$(printf %02d "$1")-" -v t0="$2" '
		$3 ~ re && $2 == "A" && !($3 in a) { a[$3] = $1 }
		$3 ~ re && $2 == "R" && !($3 in r) { r[$3] = $1 }
		END { for (n in r) printf "%s %.0f %.0f\n", n, (n in a ? (r[n] - a[n]) * 1000 : -1), (r[n] - t0) * 1000 }' \
		"$T/watch.txt"
}
seen_running() { # B: VMs of batch B the watch saw Running
	awk -v re="^${P}n[0-9]+-b$(printf %02d "$1")-" '$2 == "R" && $3 ~ re && !s[$3]++ { c++ } END { print c + 0 }' "$T/watch.txt"
}
# look_trees: one look at FILES (a sample's status in every tree); the
# first time each says Running goes into shown[FILE] (us, after the look)
look_trees() {
	local l f= new=() t
	us; t=$NOW
	while IFS= read -r l; do
		case $l in
		"==> "*" <==") f=${l#==> }; f=${f% <==} ;;
		"phase Running") [ -n "${shown[$f]:-}" ] || new+=("$f") ;;
		esac
	done < <(head -n1 "${files[@]}" 2>/dev/null)
	us
	ROUND_MS=$(((NOW - t) / 1000))
	for f in "${new[@]}"; do shown[$f]=$NOW; done
}
tree_all() { [ "$(tree_running "$1" "${names[@]}")" -ge "$size" ]; }
# tree_running I NAMES...: how many of NAMES node I's tree shows Running
tree_running() {
	local i=$1 n
	shift
	local -a f=()
	for n in "$@"; do f+=("${MNT[$i]}/vms/$n/status"); done
	head -qn1 "${f[@]}" 2>/dev/null | grep -cx 'phase Running'
}

# ---- the batches ----
ALL_CREATE=$T/create.ms ALL_BATCH=$T/batch.ms ALL_LAG=$T/lag.ms
: >"$ALL_CREATE"; : >"$ALL_BATCH"; : >"$ALL_LAG"
broken=0
us; RUN0=$NOW
AUDIT_BATCH0=$(stat -c %s "$AUDIT" 2>/dev/null || echo 0)
for ((b = 0; b * PER_BATCH < VMS; b++)); do
	from=$((b * PER_BATCH)) to=$(((b + 1) * PER_BATCH))
	[ "$to" -le "$VMS" ] || to=$VMS
	size=$((to - from))
	names=()
	for ((i = from; i < to; i++)); do vmname_v n "$i"; names+=("$n"); done
	t0=$EPOCHREALTIME
	us; tb=$NOW
	c=$(bulk "$from" "$to")
	post_ms=$(ms_since "$tb")
	[ "$c" = "$size" ] || { not_ok "batch $b: $size created" "got $c; $(tail -n 3 "$T/bulk.err")"; broken=1; }
	# Until the watch has seen every one Running, look at the status of
	# the batch's last VM of each node (posted last) in every tree: the
	# time each tree first shows it Running, against the API server's
	# event, is the sync lag.  No progress for 120 s (or a dead watch)
	# ends the wait, and a LIST decides.
	sample=() files=()
	for ((i = (to - NODES > from ? to - NODES : from); i < to; i++)); do vmname_v n "$i"; sample+=("$n"); done
	for ((i = 0; i < NODES; i++)); do
		for n in "${sample[@]}"; do files+=("${MNT[$i]}/vms/$n/status"); done
	done
	declare -A shown=()
	seen=0 last= stall=$SECONDS
	while :; do
		look_trees
		seen=$(seen_running "$b")
		[ "$seen" -ge "$size" ] && [ "${#shown[@]}" -ge "${#files[@]}" ] && break
		[ "$seen ${#shown[@]}" != "$last" ] && { last="$seen ${#shown[@]}"; stall=$SECONDS; }
		[ $((SECONDS - stall)) -lt 120 ] && kill -0 "$WATCH" 2>/dev/null || break
		nap 0.05
	done
	if [ "$seen" -lt "$size" ]; then
		notrun=$(api_list | jq -r --arg re "^${P}n[0-9]+-b$(printf %02d "$b")-" \
			'[.items[] | select((.metadata.name | test($re)) and .status.phase != "Running") |
			"\(.metadata.name) \(.status.phase // "-") \(.status.nodeName // "-")"] | .[:10][]')
		if [ -n "$notrun" ]; then
			not_ok "batch $b: every VM Running on the API server" "not Running (first 10, phase node):
$notrun"
			broken=1
		else
			echo "# batch $b: the watch saw $seen of $size Running, a LIST says all are"
		fi
	fi
	batch_times "$b" "$t0" >"$T/b$b.times"
	awk '$2 >= 0 {print $2}' "$T/b$b.times" >"$T/b$b.create"
	awk '{print $3}' "$T/b$b.times" >"$T/b$b.batch"
	cat "$T/b$b.create" >>"$ALL_CREATE"; cat "$T/b$b.batch" >>"$ALL_BATCH"
	# sync lag of the sample; the owner's own tree is left out (it is the
	# source: its status is what the API server gets)
	for f in "${!shown[@]}"; do
		n=${f%/status}; n=${n##*/}; i=${f#"$T"/m}; i=${i%%/*}
		[ "${n#"$P"n"$i"-}" != "$n" ] && continue
		echo "$n ${shown[$f]}"
	done | sort >"$T/b$b.shown"
	awk -v re="^${P}n[0-9]+-b$(printf %02d "$b")-" '$2 == "R" && $3 ~ re && !($3 in r) { r[$3] = $1; printf "%s %.6f\n", $3, $1 }' \
		"$T/watch.txt" | sort >"$T/b$b.api"
	join "$T/b$b.shown" "$T/b$b.api" | awk '{printf "%.0f\n", $2 / 1000 - $3 * 1000}' >"$T/b$b.lag"
	cat "$T/b$b.lag" >>"$ALL_LAG"
	unset shown
	# and every tree shows the whole batch Running
	bad=
	for ((i = 0; i < NODES; i++)); do
		wait_for 120 tree_all "$i" || bad="$bad node $i: $(tree_running "$i" "${names[@]}") of $size;"
	done
	[ -z "$bad" ] || { not_ok "batch $b: every tree shows the batch Running" "$bad"; broken=1; }
	echo "# batch $b: $size VMs POSTed in $post_ms ms; create->Running p50 $(pct 50 <"$T/b$b.create") p99 $(pct 99 <"$T/b$b.create") max $(pct 100 <"$T/b$b.create") ms;" \
		"batch start->Running p50 $(pct 50 <"$T/b$b.batch") p99 $(pct 99 <"$T/b$b.batch") ms;" \
		"sync lag p50 $(pct 50 <"$T/b$b.lag") p99 $(pct 99 <"$T/b$b.lag") max $(pct 100 <"$T/b$b.lag") ms (n=$(wc -l <"$T/b$b.lag"), one look every ${ROUND_MS:-?}+50 ms)"
done
RUN_MS=$(ms_since "$RUN0")
[ "$broken" = 0 ] && ok "$VMS VMs in $b batches: every one Running on the API server and in every node's tree"
echo "# all batches ($VMS VMs on $NODES nodes, $RUN_MS ms): create->Running p50 $(pct 50 <"$ALL_CREATE") ms p99 $(pct 99 <"$ALL_CREATE") ms max $(pct 100 <"$ALL_CREATE") ms (n=$(wc -l <"$ALL_CREATE"), target p99 < 2000 ms at 10,000 VMs)"
echo "# all batches: batch start->Running p50 $(pct 50 <"$ALL_BATCH") ms p99 $(pct 99 <"$ALL_BATCH") ms"
echo "# all batches: sync lag (a VM Running on the API server until another node's tree says so) p50 $(pct 50 <"$ALL_LAG") ms p99 $(pct 99 <"$ALL_LAG") ms max $(pct 100 <"$ALL_LAG") ms (n=$(wc -l <"$ALL_LAG"))"
watch_stop
[ -s "$T/watch.restarts" ] &&
	echo "# the bench's watch was dropped by the API server $(wc -l <"$T/watch.restarts") times and went on from its last resourceVersion"
AUDIT_BATCH1=$(stat -c %s "$AUDIT" 2>/dev/null || echo 0)

# Where the time of create->Running goes: until the owner sends its claim
# (the first status PATCH of the VM: the owner's watch thread, then its
# reconciler's queue), then until the API server shows Running (claim,
# define, start, status PATCHes).  The audit log's clock and the watch's
# are both this machine's; times of day in UTC.
audit_requests "$AUDIT_BATCH0" "$AUDIT_BATCH1" timed | awk '$3 == "virtualmachines/status"' >"$T/batch.status"
awk 'NR == FNR { if (!($4 in c)) c[$4] = $5; next }
	$2 == "A" && !($3 in a) { a[$3] = $1 % 86400 }
	$2 == "R" && !($3 in r) { r[$3] = $1 % 86400 }
	END { for (n in r) if ((n in a) && (n in c)) printf "%.0f %.0f\n", (c[n] - a[n]) * 1000, (r[n] - c[n]) * 1000 }' \
	"$T/batch.status" "$T/watch.txt" >"$T/parts"
echo "# where create->Running goes: create until the owner's claim p50 $(awk '{print $1}' "$T/parts" | pct 50) p99 $(awk '{print $1}' "$T/parts" | pct 99) ms;" \
	"claim until Running on the API server p50 $(awk '{print $2}' "$T/parts" | pct 50) p99 $(awk '{print $2}' "$T/parts" | pct 99) ms (n=$(wc -l <"$T/parts"))"
echo "# the API server's time for a node's status PATCH during the batches: p50 $(awk '{printf "%.0f\n", ($6 - $5) * 1000}' "$T/batch.status" | pct 50) ms p99 $(awk '{printf "%.0f\n", ($6 - $5) * 1000}' "$T/batch.status" | pct 99) ms (n=$(wc -l <"$T/batch.status"))"
# status PATCHes whose body is the same as the VM's previous one
tail -c +$((AUDIT_BATCH0 + 1)) "$AUDIT" | head -c $((AUDIT_BATCH1 - AUDIT_BATCH0)) |
	grep '"subresource":"status"' | grep '"stage":"ResponseComplete"' | awk '
	{
		if (!match($0, /"objectRef":\{"resource":"virtualmachines","namespace":"[^"]*","name":"[^"]*"/)) next
		n = substr($0, RSTART, RLENGTH)
		if (!match($0, /"requestObject":.*,"requestReceivedTimestamp"/)) next
		b = substr($0, RSTART, RLENGTH)
		all++; v[n] = 1
		if (last[n] == b) same++
		last[n] = b
	}
	END { for (x in v) vms++
		printf "# status PATCHes during the batches: %d for %d VMs (%.1f each), %d of them (%.0f%%) the same as the VM'"'"'s previous one\n",
			all, vms, (vms ? all / vms : 0), same, (all ? same * 100 / all : 0) }'
# where a start's time goes, from the owners' debug lines
startpart() { sed -n "s/.*debug: start ${P}n[0-9]*-b[0-9]*-[0-9]*: .*$1 \([0-9]*\) ms.*/\1/p" "$T"/node*.log; }
if grep -q "debug: start ${P}" "$T"/node*.log; then
	echo "# owners' start of a VM: define p50 $(startpart define | pct 50) p99 $(startpart define | pct 99) ms," \
		"libvirt start p50 $(startpart start | pct 50) ms, refresh p50 $(startpart refresh | pct 50) p99 $(startpart refresh | pct 99) ms," \
		"persist p50 $(startpart persist | pct 50) p99 $(startpart persist | pct 99) ms"
fi

# the API server's view: spread and phase
api_list | jq -r '.items[] | "\(.metadata.name) \(.spec.nodeSelector["hypersdk.io/node"]) \(.status.nodeName // "-") \(.status.phase // "-")"' >"$T/list1"
is "the API server has $VMS VMs, each Running on the node its nodeSelector names" \
	"$(awk '$2 == $3 && $4 == "Running"' "$T/list1" | wc -l)" "$VMS"
echo "# VMs per node: $(awk '{print $3}' "$T/list1" | sort | uniq -c | awk '{print $1}' | sort -n | uniq -c | awk '{printf "%s%d nodes own %d", (NR > 1 ? ", " : ""), $1, $2}')"

# per node: RSS, CPU time
report_nodes() { # LABEL
	local i r=() c=()
	for ((i = 0; i < NODES; i++)); do r+=("$(rss_kib "$i")"); c+=("$(cpu_ms "$i")"); done
	echo "# $1: daemon RSS per node min/median/max $(mib "$(printf '%s\n' "${r[@]}" | pct 0)")/$(mib "$(median "${r[@]}")")/$(mib "$(printf '%s\n' "${r[@]}" | pct 100)") MiB;" \
		"CPU time per node median $(median "${c[@]}") ms max $(printf '%s\n' "${c[@]}" | pct 100) ms"
	RSS_MED=$(median "${r[@]}") RSS_MAX=$(printf '%s\n' "${r[@]}" | pct 100)
	CPU=("${c[@]}")
}
report_nodes "after the batches"
# the target, 64 MiB per 1,000 VMs, for a node whose model holds them all
rss_target() { # LABEL
	echo "# $1: largest RSS $(mib "$RSS_MAX") MiB with $VMS VMs in each node's model (every node mirrors all, owns $PER_NODE):" \
		"$(awk -v r="$RSS_MAX" -v n="$VMS" 'BEGIN{printf "%.1f", r/1024/n*1000}') MiB per 1,000 VMs," \
		"$(awk -v r="$RSS_MAX" -v r0="$(median "${RSS0[@]}")" -v n="$VMS" 'BEGIN{printf "%.1f", (r-r0)/n}') KiB per VM above the daemon with none" \
		"(target < 64 MiB per 1,000 VMs)"
}
rss_target "after the batches"
CPU_BATCH=("${CPU[@]}")

# ---- an API server outage ----
K=$((PER_NODE / 10)); [ "$K" -ge 1 ] || K=1
AUDIT_OUT0=$(stat -c %s "$AUDIT" 2>/dev/null || echo 0)
apiserver_kill
echo "# outage: API server killed"
# K VMs of each node, stopped through the owner's tree, the nodes at once
us; t0=$NOW
stoppers=()
for ((i = 0; i < NODES; i++)); do
	(
		for ((j = 0; j < K; j++)); do
			n=$(vmname $((j * NODES + i)))
			if echo stop 2>/dev/null >"${MNT[$i]}/vms/$n/ctl"; then
				echo "$n"
			else
				echo "# stop $n: $(cat "${MNT[$i]}/vms/$n/err" 2>&1)" >&2
			fi
		done >"$T/stopped$i"
	) 2>>"$T/stop.err" &
	stoppers+=($!)
done
for p in "${stoppers[@]}"; do wait "$p"; done
stop_ms=$(ms_since "$t0")
cat "$T"/stopped[0-9]* >"$T/stopped"
is "$((K * NODES)) VMs stopped through their owners' trees while the API server is away ($stop_ms ms)" \
	"$(wc -l <"$T/stopped")" "$((K * NODES))"
[ -s "$T/stop.err" ] && head -n 5 "$T/stop.err"
stopped_in_trees=0 queued=0
for ((i = 0; i < NODES; i++)); do
	for n in $(cat "$T/stopped$i"); do
		[ "$(head -n1 "${MNT[$i]}/vms/$n/status" 2>/dev/null)" = "phase Stopped" ] && stopped_in_trees=$((stopped_in_trees + 1))
	done
	queued=$((queued + $(outbox "$i")))
done
is "their owners' trees show them Stopped" "$stopped_in_trees" "$(wc -l <"$T/stopped")"
unreach=0
for ((i = 0; i < NODES; i++)); do [ "$(self_status "$i" apiserver)" = unreachable ] && unreach=$((unreach + 1)); done
lagm=$(curl -s --max-time 5 "http://${HTTP[0]}/metrics" | awk '$1 == "hypersdk_sync_lag_seconds" {print $2}')
echo "# outage: $queued outbox entries on $NODES nodes; $unreach nodes say apiserver unreachable; node 0's hypersdk_sync_lag_seconds ${lagm:-?}"
for ((i = 0; i < NODES; i++)); do LOG0[$i]=$(stat -c %s "$T/node$i.log"); done
us; t0=$NOW
if ! "$TOP/tests/k8s/cluster.sh" start-apiserver "$KC" >>"$T/cluster.out" 2>&1; then
	not_ok "the API server comes back" "$(tail -n 5 "$T/cluster.out")"
	done_testing
fi
us; tup=$NOW
echo "# outage: API server back (ready) in $(((tup - t0) / 1000)) ms"
declare -a DRAIN=()
end=$((SECONDS + 300)) left=$NODES
while [ "$left" -gt 0 ] && [ $SECONDS -lt $end ]; do
	for ((i = 0; i < NODES; i++)); do
		[ -z "${DRAIN[$i]:-}" ] || continue
		if [ "$(outbox "$i")" = 0 ]; then
			us; DRAIN[$i]=$(((NOW - tup) / 1000)); left=$((left - 1))
		fi
	done
	[ "$left" -eq 0 ] || nap 0.1
done
is "every node's outbox drains once the API server is back" "$left" 0
echo "# outage: outboxes empty after the API server was ready: max $(printf '%s\n' "${DRAIN[@]}" | pct 100) ms, median $(printf '%s\n' "${DRAIN[@]}" | pct 50) ms (per node: ${DRAIN[*]})"
# nothing lost: the stopped ones have running false and phase Stopped, the
# others are still running
settled() {
	api_list | jq -r '.items[] | "\(.metadata.name) \(.spec.running) \(.status.phase // "-")"' | sort >"$T/list2"
	sort "$T/stopped" >"$T/stopped.s"
	LOST=$(join "$T/stopped.s" "$T/list2" | awk '$2 != "false" || $3 != "Stopped"' | wc -l)
	OTHERS=$(join -v 2 "$T/stopped.s" "$T/list2" | awk '$2 != "true" || $3 != "Running"' | wc -l)
	[ "$LOST" = 0 ] && [ "$OTHERS" = 0 ] && [ "$(join "$T/stopped.s" "$T/list2" | wc -l)" = "$(wc -l <"$T/stopped")" ]
}
us; t0=$NOW
settled
echo "# outage: when the outboxes were empty the API server lacked $LOST of the $(wc -l <"$T/stopped") changes, and $OTHERS others were not running true/Running"
wait_for 300 settled
settle_ms=$(ms_since "$t0")
check "nothing lost: the API server has spec.running false and phase Stopped for all $(wc -l <"$T/stopped") (the others still Running)" settled
[ "$LOST" = 0 ] && [ "$OTHERS" = 0 ] ||
	echo "# wrong on the API server: $LOST of the stopped, $OTHERS of the others; first: $(join "$T/stopped.s" "$T/list2" | awk '$2 != "false" || $3 != "Stopped"' | head -n 3 | tr '\n' ';')"
echo "# outage: the API server showed every change ${settle_ms} ms after the outboxes were empty"

# ---- at rest ----
# At rest means: every node has relisted every kind (the restart ended
# every watch with 410 Gone) and watches again, and for 10 s no node has
# sent anything but its lease renewals, its lease lists and watches.  A
# relist is paged (500 a page), and a node can be quiet for seconds between
# two pages while it stores what the last one brought, and again before
# its reconciler pushes the status of every VM it owns once more.
quiet_for() { # BYTES-FROM: nothing but leases, watches and a node's look at its Node object since
	! tail -c +$(($1 + 1)) "$AUDIT" | grep -v '"verb":"watch"' | grep -v '"resource":"nodes"' |
		grep -qv '"resource":"leases"'
}
relisted() { # every node's last list or watch of each kind since the outage is a watch
	[ "$(audit_requests "$AUDIT_OUT0" "$(stat -c %s "$AUDIT")" |
		awk '($2 == "list" || $2 == "watch") && $3 != "leases" { last[$1 " " $3] = $2 }
			END { for (k in last) if (last[k] == "watch") w++; print w + 0 }')" -ge $((NODES * 4)) ]
}
us; t0=$NOW tq=$NOW
end=$((SECONDS + 1200))
q0=$(stat -c %s "$AUDIT")
while [ $SECONDS -lt $end ]; do
	sleep 1
	us
	if ! quiet_for "$q0" || ! relisted; then
		q0=$(stat -c %s "$AUDIT") tq=$NOW
	elif [ $(((NOW - tq) / 1000000)) -ge 10 ]; then
		break
	fi
done
quiet_for "$q0" && relisted || echo "# the nodes were still busy 1200 s after the outage"
echo "# after the outage: every node had relisted, and the last request other than leases and watches came $(((tq - t0) / 1000)) ms after the API server had every change"
# A VM stopped during the outage must stay stopped: its owner's debug line
# "start NAME: ..." after the API server came back says it was started again.
for ((i = 0; i < NODES; i++)); do
	tail -c +$((LOG0[i] + 1)) "$T/node$i.log" | sed -n "s/.* debug: start \(${P}[^:]*\): .*/\1/p"
done | sort -u | join - "$T/stopped.s" >"$T/restarted"
is "no VM stopped through the tree during the outage was started again after it" "$(wc -l <"$T/restarted")" 0
[ -s "$T/restarted" ] && echo "# started again after the outage (first 5 of $(wc -l <"$T/restarted")): $(head -n 5 "$T/restarted" | tr '\n' ' ')"
# the relists the restart caused (410 Gone): VirtualMachine LIST pages per node, and how long
audit_requests "$AUDIT_OUT0" "$(stat -c %s "$AUDIT")" timed | awk '$2 == "list" && $3 == "virtualmachines"' >"$T/relist"
echo "# relist after the restart, VirtualMachine LIST pages (500 a page) per node: $(awk '{n[$1]++} END{for (u in n) print n[u]}' "$T/relist" | pct 50); each node from its first page to its last" \
	"median $(awk '{if (!($1 in f)) f[$1] = $5; l[$1] = $6} END{for (u in f) printf "%.0f\n", (l[u] - f[u] + 86400) % 86400 * 1000}' "$T/relist" | pct 50) ms" \
	"max $(awk '{if (!($1 in f)) f[$1] = $5; l[$1] = $6} END{for (u in f) printf "%.0f\n", (l[u] - f[u] + 86400) % 86400 * 1000}' "$T/relist" | pct 100) ms"
for ((i = 0; i < NODES; i++)); do C0[$i]=$(cpu_ms "$i"); done
AUDIT_REST0=$(stat -c %s "$AUDIT" 2>/dev/null || echo 0)
sleep "$REST"
AUDIT_REST1=$(stat -c %s "$AUDIT" 2>/dev/null || echo 0)
for ((i = 0; i < NODES; i++)); do C1[$i]=$(cpu_ms "$i"); done
# audit_counts FROM TO: "NODE VERB RESOURCE COUNT" for the log's bytes
# FROM..TO; a watch counts when it starts, anything else when it ends
audit_counts() {
	audit_requests "$1" "$2" | sort | uniq -c | awk '{print $2, $3, $4, $1}'
}
audit_counts "$AUDIT_REST0" "$AUDIT_REST1" >"$T/rest.counts"
per_node=()
for ((i = 0; i < NODES; i++)); do
	per_node+=("$(awk -v n="$(nodename "$i")" -v s="$REST" '$1 == n {c += $4} END{printf "%.0f", c * 60 / s}' "$T/rest.counts")")
done
echo "# at rest ($REST s): API requests per node per minute median $(median "${per_node[@]}") max $(printf '%s\n' "${per_node[@]}" | pct 100) (per node: ${per_node[*]})"
echo "# at rest, all nodes, per node per minute by verb and resource: $(awk -v s="$REST" -v k="$NODES" '{c[$2 " " $3] += $4} END{for (x in c) printf "%s %.1f; ", x, c[x] * 60 / s / k}' "$T/rest.counts" | tr -s ' ')"
rest_lists=$(awk '$2 == "list" && $3 != "leases" {c += $4} END{print c + 0}' "$T/rest.counts")
is "no LIST of a watched kind at rest (no relists: the watches hold)" "$rest_lists" 0
rest_cpu=()
for ((i = 0; i < NODES; i++)); do rest_cpu+=("$(((C1[i] - C0[i]) * 1000 / (REST * 1000)))"); done
echo "# at rest: daemon CPU per node median $(median "${rest_cpu[@]}") ms/s max $(printf '%s\n' "${rest_cpu[@]}" | pct 100) ms/s (1000 = one core)"
report_nodes "at rest"
rss_target "at rest"
# LISTs over the whole run, per node and kind: one per kind at start-up,
# and one after the API server came back (its restart ends the watches
# with an error, so each kind lists again); a storm would be many more
audit_counts 0 "$(stat -c %s "$AUDIT")" >"$T/all.counts"
echo "# LISTs per node over the whole run, by resource (start-up, batches, outage, rest): $(awk -v k="$NODES" '$2 == "list" {c[$3] += $4} END{for (r in c) printf "%s %.1f; ", r, c[r] / k}' "$T/all.counts")"
audit_counts "$AUDIT_BATCH0" "$AUDIT_BATCH1" >"$T/batch.counts"
echo "# during the batches, per owned VM: $(awk -v n="$VMS" '{c[$2 " " $3] += $4} END{for (x in c) printf "%s %.2f; ", x, c[x] / n}' "$T/batch.counts")"
audit_counts "$AUDIT_OUT0" "$AUDIT_REST0" >"$T/outage.counts"
echo "# around the outage (restart to rest), all nodes: $(awk '{c[$2 " " $3] += $4} END{for (x in c) printf "%s %d; ", x, c[x]}' "$T/outage.counts")"
max_lists=$(awk '$2 == "list" {c[$1] += $4} END{m = 0; for (n in c) if (c[n] > m) m = c[n]; print m}' "$T/all.counts")
echo "# most LISTs by one node over the whole run: $max_lists"

# ---- one node's mount: ls -l vms, cat vms/*/status ----
V=${MNT[0]}/vms
mine=("$V/${P}n00-"*/status)
all=("$V/${P}"*/status)
# the tmpfs peer: as many folders, each with a status file of that size
mkdir -p "$T/tmpfs"
mount -t tmpfs -o size=512m tmpfs "$T/tmpfs" && TMPFS=$T/tmpfs
sample=$(cat "${mine[0]}")
for ((i = 0; i < VMS; i++)); do vmname_v n "$i"; echo "$T/tmpfs/vms/$n"; done | xargs mkdir -p
for ((i = 0; i < VMS; i++)); do vmname_v n "$i"; printf '%s\n' "$sample" >"$T/tmpfs/vms/$n/status"; done
tm_all=("$T/tmpfs/vms/"*/status)
tm_mine=("$T/tmpfs/vms/${P}n00-"*/status)
timeit() { # OUT CMD...: runs CMD 6 times, OUT = the first and the median of the other 5 (ms)
	local -n out=$1
	local t k=()
	shift
	for ((j = 0; j < 6; j++)); do us; t=$NOW; "$@" >/dev/null 2>&1; k+=("$(ms_since "$t")"); done
	out="${k[0]} $(median "${k[@]:1}")"
}
timeit lsl ls -l "$V"
timeit lst ls -l "$T/tmpfs/vms"
timeit cata cat "${all[@]}"
timeit catt cat "${tm_all[@]}"
timeit catm cat "${mine[@]}"
timeit catmt cat "${tm_mine[@]}"
is "node 0's tree lists all $VMS" "$(ls "$V" | grep -c "^$P")" "$VMS"
echo "# node 0 (owns ${#mine[@]}, mirrors $VMS): ls -l vms first ${lsl% *} ms, then median ${lsl#* } ms; tmpfs ${lst#* } ms"
echo "# node 0: cat vms/*/status ($VMS files) first ${cata% *} ms, then median ${cata#* } ms; tmpfs ${catt#* } ms"
echo "# node 0: cat of its own ${#mine[@]} VMs' status first ${catm% *} ms, then median ${catm#* } ms; tmpfs ${catmt#* } ms"
echo "# RATIO ls-l-vms/ls-l-tmpfs-$VMS $(ratio "${lsl#* }" "${lst#* }")"
echo "# RATIO cat-status/cat-tmpfs-$VMS $(ratio "${cata#* }" "${catt#* }")"

alive=0
for ((i = 0; i < NODES; i++)); do kill -0 "${PIDS[$i]}" 2>/dev/null && alive=$((alive + 1)); done
is "all $NODES daemons still run" "$alive" "$NODES"
echo "# total: $SECONDS s"
done_testing
