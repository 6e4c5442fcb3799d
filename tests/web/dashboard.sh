#!/usr/bin/env bash
# The dashboard against a real daemon and libvirtd: the JSON API (list,
# get, 404, bad input refused with nothing changed, cross-site and
# unauthenticated POSTs refused), /metrics, the event stream, start-up
# errors, and a headless Chromium that stops a VM from the page.
. "$(dirname "$0")/../fs/lib.sh"
# Names of our own, so concurrent runs and other suites never meet ours.
NODE=tw$$
P=tw$$-
LOGDIR=${TEST_LOGS:-/tmp/hypersdk-test-logs}
NPM_DIR=${HYPERSDK_NPM_CACHE:-/var/cache/hypersdk/npm}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
mkdir -p "$LOGDIR"

SSE_PID=
web_cleanup() {
	[ -z "$SSE_PID" ] || kill "$SSE_PID" 2>/dev/null
	cleanup
}
trap web_cleanup EXIT

# start_web [ARGS...]: the daemon with a dashboard on a free loopback
# port (port 0: the kernel picks; the log tells which).
dashboards() { grep -c "dashboard on http://" "$T/mountd.log" 2>/dev/null; }
start_web() {
	local n
	n=$(dashboards)
	start_mountd --http 127.0.0.1:0 "$@" || return 1
	wait_for 10 test "$(dashboards)" -gt "${n:-0}" || return 1
	URL=$(grep -o "dashboard on http://[^ ]*" "$T/mountd.log" | tail -n 1 |
		sed 's|dashboard on ||; s|/k8s/vms$||')
	PORT=${URL##*:}
}

# req METHOD PATH [curl args...]: prints "STATUS BODY" (body on one line)
req() {
	local m=$1 p=$2
	shift 2
	curl -sS --max-time 60 -o "$T/body" -w '%{http_code}' -X "$m" "$@" "$URL$p" >"$T/code"
	printf '%s %s' "$(cat "$T/code")" "$(tr '\n' ' ' <"$T/body")"
}
post() { # PATH JSON [curl args...]
	local p=$1 d=$2
	shift 2
	req POST "$p" -H 'Content-Type: application/json' --data-binary "$d" "$@"
}
code() { cut -d' ' -f1 <<<"$1"; }
header() { # PATH NAME: the value of one response header of a GET
	curl -sS --max-time 10 -D - -o /dev/null "$URL$1" |
		awk -v h="$(tr 'A-Z' 'a-z' <<<"$2")" -F': ' 'tolower($1) == h { sub(/\r$/, "", $2); print $2 }'
}
snapshot_vm() { # NAME: what a refused request must leave alone
	printf '%s\n---\n%s\n---\n%s\n' "$(phase "$1")" "$(cat "$M/vms/$1/spec")" \
		"$(cat "$M/vms/$1/err")"
}

# The grid badge: a file provider, as a site without internet has.
printf '{"zone":"site-1","carbonIntensity":180,"datetime":"%s"}\n' \
	"$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$T/carbon.json"
start_web --carbon-provider file --carbon-file "$T/carbon.json" --carbon-zone site-1 ||
	{ not_ok "daemon starts with --http 127.0.0.1:0"; done_testing; }
ok "daemon serves the dashboard on $URL"
grid_known() { [[ $(req GET /api/k8s/nodes) == *'"intensity":180'* ]]; }
check "GET /api/k8s/nodes has this node's grid (site-1, 180)" wait_for 20 grid_known
like "as a NodeList with zone and provider" "$(req GET /api/k8s/nodes)" \
	'^200 .*"kind":"NodeList".*"zone":"site-1","provider":"file","intensity":180'

a=${P}a
b=${P}b
is "create $a via vms/ctl" "$("$ONEWRITE" "$M/vms/ctl" "create $a cpus=1 memory=64Mi disk=64Mi running=true")" ok
r=$(post /api/k8s/vms "{\"name\":\"$b\",\"cpus\":1,\"memory\":\"64Mi\",\"disk\":\"64Mi\"}")
is "POST /api/k8s/vms creates $b (201)" "$(code "$r")" 201
is "$b is in the tree, Stopped" "$(phase "$b")" Stopped
is "and in libvirt" "$(domstate "$b")" "shut off"

# ---- reads -----------------------------------------------------------
r=$(req GET /k8s/vms)
is "GET /k8s/vms is 200" "$(code "$r")" 200
like "it is the dashboard page" "$r" "HyperSDK VM Management"
like "Content-Type text/html" "$(header /k8s/vms Content-Type)" "^text/html"
like "a strict CSP without inline script" "$(header /k8s/vms Content-Security-Policy)" "script-src 'self';"
is "nosniff" "$(header /k8s/vms X-Content-Type-Options)" nosniff
like "app.js is served as JavaScript" "$(header /assets/app.js Content-Type)" "^text/javascript"
is "assets revalidate (no-cache)" "$(header /assets/app.js Cache-Control)" no-cache
is "unknown asset is 404" "$(code "$(req GET /assets/nope.js)")" 404

r=$(req GET /api/k8s/vms)
is "GET /api/k8s/vms is 200" "$(code "$r")" 200
is "it lists both VMs" "$(jq -r '[.items[].metadata.name | select(startswith("'"$P"'"))] | sort | join(" ")' "$T/body")" "$a $b"
is "with their phases" "$(jq -r '.items[] | select(.metadata.name == "'"$a"'") | .status.phase' "$T/body")" Running
is "and usage numbers" "$(jq -r '.items[] | select(.metadata.name == "'"$a"'") | .usage.memoryBytes' "$T/body")" 67108864
r=$(req GET "/api/k8s/vms/default/$a")
is "GET /api/k8s/vms/default/$a is 200" "$(code "$r")" 200
is "it is the VM object" "$(jq -r '.kind + " " + .metadata.name + " " + .spec.memory' "$T/body")" "VirtualMachine $a 64Mi"
r=$(req GET "/api/k8s/vms/default/${P}none")
is "an unknown VM is 404" "$(code "$r")" 404
like "with a JSON error" "$(jq -r .error "$T/body")" "does not exist"
is "a VM in another namespace is 404" "$(code "$(req GET "/api/k8s/vms/other/$a")")" 404
is "a bad name in the path is 400" "$(code "$(req GET "/api/k8s/vms/default/Bad_Name")")" 400
for p in templates snapshots operations vm-metrics; do
	is "GET /api/k8s/$p is 200 JSON" "$(code "$(req GET /api/k8s/$p)")$(jq -e type "$T/body" >/dev/null && echo ' json')" "200 json"
done
req GET /api/k8s/vm-metrics >/dev/null
like "vm-metrics has totals" "$(jq -c .totals "$T/body")" '"cpus":[0-9]+'

# ---- refused requests change nothing ---------------------------------
before=$(snapshot_vm "$a")
r=$(post "/api/k8s/vms/default/$a/actions" '{"action": "stop"')
is "bad JSON is 400" "$(code "$r")" 400
like "with {\"error\": ...}" "$(jq -r .error "$T/body")" "bad JSON"
r=$(post "/api/k8s/vms/default/$a/actions" '{"action":"frobnicate"}')
is "an unknown verb is 400" "$(code "$r")" 400
like "in the ctl grammar's words" "$(jq -r .error "$T/body")" "unknown control message"
is "an unknown field is 400" "$(code "$(post "/api/k8s/vms/default/$a/actions" '{"action":"stop","when":"now"}')")" 400
is "an argument smuggled into action is 400" "$(code "$(post "/api/k8s/vms/default/$a/actions" '{"action":"stop force"}')")" 400
r=$(post "/api/k8s/vms/default/$a/actions" '{"action":"stop"}' -H 'Origin: http://evil.example' -H 'Sec-Fetch-Site: cross-site')
is "a cross-site POST is 403" "$(code "$r")" 403
r=$(post "/api/k8s/vms/default/$a/actions" '{"action":"stop"}' -H 'Origin: http://evil.example')
is "a POST from another Origin is 403" "$(code "$r")" 403
r=$(req POST "/api/k8s/vms/default/$a/actions" -H 'Content-Type: text/plain' --data-binary '{"action":"stop"}')
is "a POST that is not application/json is 415" "$(code "$r")" 415
head -c 70000 /dev/zero | tr '\0' ' ' >"$T/big"
r=$(req POST "/api/k8s/vms/default/$a/actions" -H 'Content-Type: application/json' --data-binary @"$T/big")
is "a body over 64 KiB is 413" "$(code "$r")" 413
r=$(req GET "/api/k8s/vms/default/$a/actions")
is "GET on actions is 405 (GET never acts)" "$(code "$r")" 405
r=$(req GET /api/k8s/vms -H 'Host: evil.example:80')
is "a foreign Host (DNS rebinding) is refused" "$(code "$r")" 421
r=$(req GET /api/k8s/vms -H "Host: localhost.evil.example:$PORT")
is "so is a name that only starts like a loopback one" "$(code "$r")" 421
r=$(req GET /api/k8s/vms -H "Host: 127.0.0.1.evil.example")
is "or an address followed by a domain" "$(code "$r")" 421
# Any local user reaches 127.0.0.1; the dashboard treats them as the tree
# does (tests/security/web.sh tries every rule): nobody sees no VM.
nobody() { runuser -u nobody -- curl -sS --max-time 60 -o /dev/null -w '%{http_code}' "$@"; }
is "another local user gets an answer" "$(nobody "$URL/api/k8s/vms")" 200
check "with no VM in it" bash -c "! runuser -u nobody -- curl -sS '$URL/api/k8s/vms' | grep -q '$a'"
is "and cannot act: the VM does not exist for them (404)" "$(nobody -X POST -H 'Content-Type: application/json' \
	--data-binary '{"action":"stop"}' "$URL/api/k8s/vms/default/$a/actions")" 404
is "a POST for an unknown VM is 404" "$(code "$(post "/api/k8s/vms/default/${P}none/actions" '{"action":"start"}')")" 404
is "after all that, $a is unchanged (phase, spec, err)" "$(snapshot_vm "$a")" "$before"
is "and still running in libvirt" "$(domstate "$a")" running
r=$(post "/api/k8s/vms/default/$a/actions" '{"action":"start"}' -H "Origin: $URL" -H 'Sec-Fetch-Site: same-origin')
is "a same-origin POST passes the checks (start of a running VM: 409)" "$(code "$r")" 409
r=$(post "/api/k8s/vms/default/$a/actions" '{"action":"start"}' -H "Origin: https://127.0.0.1:$PORT")
is "so does one from the https origin of a TLS proxy" "$(code "$r")" 409

# ---- actions through the fs_ops ------------------------------------------
r=$(post "/api/k8s/vms/default/$b/actions" '{"action":"start"}')
is "POST start is 200" "$(code "$r")" 200
is "the answer has the new phase" "$(jq -r .vm.status.phase "$T/body")" Running
is "the tree says Running" "$(phase "$b")" Running
is "libvirt says running" "$(domstate "$b")" running
r=$(post "/api/k8s/vms/default/$b/actions" '{"action":"start"}')
is "start again is 409" "$(code "$r")" 409
like "the error is the ctl's" "$(jq -r .error "$T/body")" "is Running"
like "and it is in err, as for a ctl write" "$(cat "$M/vms/$b/err")" "is Running"
r=$(post /api/k8s/vms "{\"name\":\"$a\"}")
is "create with a taken name is 409" "$(code "$r")" 409
is "create with a bad name is 400" "$(code "$(post /api/k8s/vms '{"name":"Bad_Name"}')")" 400

# ---- operations, snapshots ----------------------------------------------------
# (objects of the model: the API lists them whole, as kubectl would see them)
c=${P}c
r=$(post "/api/k8s/vms/default/$b/actions" '{"ctl":"clone '"$c"'"}')
is "POST {\"ctl\":\"clone $c\"} of running $b is 200" "$(code "$r")" 200
is "$c is in the tree, Stopped" "$(phase "$c")" Stopped
r=$(req GET /api/k8s/operations)
is "GET /api/k8s/operations is 200" "$(code "$r")" 200
opsel='.items[] | select(.spec.vmRef.name == "'"$b"'" and .spec.operation == "clone")'
is "it lists a VMOperation clone of $b, Succeeded" "$(jq -r "$opsel | .kind + \" \" + .status.phase" "$T/body")" "VMOperation Succeeded"
like "named VM-clone-UNIXTIME" "$(jq -r "$opsel | .metadata.name" "$T/body")" "^$b-clone-[0-9]+$"
is "with progress 100 and both times" "$(jq -r "$opsel | [.status.progress, (.status.startTime | type), (.status.completionTime | type)] | join(\" \")" "$T/body")" "100 string string"
is "the list is a VMOperationList" "$(jq -r .kind "$T/body")" VMOperationList
r=$(post "/api/k8s/vms/default/$c/actions" '{"action":"delete"}')
is "delete the clone $c (200)" "$(code "$r")" 200

r=$(post "/api/k8s/vms/default/$b/actions" '{"ctl":"snapshot s1"}')
is "POST {\"ctl\":\"snapshot s1\"} is 200" "$(code "$r")" 200
r=$(req GET /api/k8s/snapshots)
is "GET /api/k8s/snapshots is 200" "$(code "$r")" 200
snapsel='.items[] | select(.metadata.name == "s1")'
is "s1 is a VMSnapshot of $b, Ready" "$(jq -r "$snapsel | .kind + \" \" + .spec.vmRef.name + \" \" + .status.phase" "$T/body")" "VMSnapshot $b Ready"
is "ready to restore, with a size" "$(jq -r "$snapsel | [.status.readyToRestore, (.status.size | type)] | join(\" \")" "$T/body")" "true string"
req GET "/api/k8s/snapshots?vm=$b" >/dev/null
is "?vm=$b lists it" "$(jq -r '[.items[].metadata.name] | join(" ")' "$T/body")" s1
req GET "/api/k8s/snapshots?vm=${P}none" >/dev/null
is "?vm= of another VM lists nothing" "$(jq -r '.items | length' "$T/body")" 0
is "?vm= with a bad name is 400" "$(code "$(req GET '/api/k8s/snapshots?vm=Bad_Name')")" 400
r=$(req GET /api/k8s/templates)
is "GET /api/k8s/templates is a VMTemplateList" "$(jq -r .kind "$T/body")" VMTemplateList

# ---- the event stream -------------------------------------------------------
echo stop > "$M/vms/$b/ctl"
curl -sS -N --max-time 30 "$URL/api/k8s/events" >"$T/sse" 2>/dev/null &
SSE_PID=$!
wait_for 5 grep -q "event: hello" "$T/sse"
like "GET /api/k8s/events says hello" "$(head -n 3 "$T/sse")" "event: hello"
like "as text/event-stream" "$(curl -sS --max-time 2 -D - -o /dev/null "$URL/api/k8s/events" 2>/dev/null | tr -d '\r' | grep -i '^content-type')" "text/event-stream"
echo start > "$M/vms/$b/ctl"
wait_for 10 grep -q "\"vm\":\"$b\"" "$T/sse"
like "echo start > ctl pushes a change event for $b" "$(grep -A2 'event: change' "$T/sse" | tr '\n' ' ')" "data: \\{\"seq\":[0-9]+,\"vm\":\"$b\""
is "a snapshot by ctl while the stream is open" "$("$ONEWRITE" "$M/vms/$b/ctl" "snapshot s2")" ok
wait_for 10 grep -q '"objects"' "$T/sse"
like "object changes (VMSnapshot s2) push a change event too" "$(grep '^data: ' "$T/sse" | tr '\n' ' ')" '"what":\[[^]]*"objects"'
kill "$SSE_PID" 2>/dev/null
wait "$SSE_PID" 2>/dev/null
SSE_PID=

# ---- deleting a snapshot ------------------------------------------------------
r=$(post /api/k8s/snapshots/default/s2/delete '{}')
is "POST /api/k8s/snapshots/default/s2/delete is 200" "$(code "$r")" 200
req GET /api/k8s/snapshots >/dev/null
is "s2 is gone from the API" "$(jq -r '[.items[].metadata.name] | join(" ")' "$T/body")" s1
check "and from the tree" test ! -e "$M/vms/$b/snapshots/s2"
check "and from libvirt" bash -c "! ${VIRSH[*]} snapshot-list --name $b 2>/dev/null | grep -qx s2"
is "deleting it again is 404" "$(code "$(post /api/k8s/snapshots/default/s2/delete '{}')")" 404
is "a snapshot of another namespace is 404" "$(code "$(post /api/k8s/snapshots/other/s1/delete '{}')")" 404
is "GET on delete is 405 (GET never acts)" "$(code "$(req GET /api/k8s/snapshots/default/s1/delete)")" 405
is "a cross-site delete is 403" "$(code "$(post /api/k8s/snapshots/default/s1/delete '{}' -H 'Origin: http://evil.example')")" 403
is "s1 is still there" "$(cat "$M/vms/$b/snapshots/s1/status" | awk '$1 == "phase" { print $2 }')" Ready

# ---- /metrics ---------------------------------------------------------------
curl -sS --max-time 10 "$URL/metrics" >"$T/metrics"
like "/metrics is Prometheus text" "$(header /metrics Content-Type)" "^text/plain; version=0.0.4"
like "hypersdk_vms counts by phase" "$(grep '^hypersdk_vms{phase="Running"}' "$T/metrics")" '^hypersdk_vms\{phase="Running"\} [1-9][0-9]*$'
wait_for 10 bash -c "curl -sS '$URL/metrics' 2>/dev/null | grep -q 'hypersdk_vm_cpu_seconds_total{vm=\"$a\"'"
like "cpu seconds of $a from its stats" "$(curl -sS "$URL/metrics" | grep "^hypersdk_vm_cpu_seconds_total{vm=\"$a\"")" ' [0-9]+\.[0-9]+$'
like "memory bytes of $a" "$(curl -sS "$URL/metrics" | grep "^hypersdk_vm_memory_bytes{vm=\"$a\"")" ' [0-9]+$'
like "FUSE request histogram" "$(grep '^hypersdk_fuse_request_seconds_count{op="read"}' "$T/metrics")" ' [1-9][0-9]*$'
check "histogram buckets end with +Inf" grep -q 'hypersdk_fuse_request_seconds_bucket{op="read",le="+Inf"}' "$T/metrics"
check "sync lag and operation durations are exposed" grep -q '^hypersdk_sync_lag_seconds 0$' "$T/metrics"
like "the clone is in the operation duration histogram" "$(grep '^hypersdk_operation_duration_seconds_count{operation="clone"}' "$T/metrics")" ' [1-9][0-9]*$'
check "its +Inf bucket equals its count" test "$(grep -c '^hypersdk_operation_duration_seconds_bucket{operation="clone",le="+Inf"} 1$' "$T/metrics")" = 1
curl -sS --max-time 10 "$URL/metrics" >"$T/metrics2"
is "counted once: a second scrape says the same" "$(grep '^hypersdk_operation_duration_seconds_count{operation="clone"}' "$T/metrics2")" "$(grep '^hypersdk_operation_duration_seconds_count{operation="clone"}' "$T/metrics")"
is "hypersdk_snapshots counts s1 Ready" "$(grep '^hypersdk_snapshots{phase="Ready"}' "$T/metrics")" 'hypersdk_snapshots{phase="Ready"} 1'
check "hypersdk_templates by phase" grep -q '^hypersdk_templates{phase="Ready"} 0$' "$T/metrics"
bad=$(grep -vE '^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [-+0-9.eInf]+)$' "$T/metrics" | head -n 3)
is "every line is a comment or a sample" "$bad" ""

# ---- start-up errors ------------------------------------------------------------
mkdir -p "$T/m2"
out=$(HYPERSDK_HTTP= "$MOUNTD" --foreground --mount "$T/m2" --state-dir "$T/s2" --pool-dir "$T/p2" \
	--node "${NODE}y" --http "127.0.0.1:$PORT" 2>&1)
rc=$?
check "a port in use fails the start" test "$rc" -ne 0
like "saying so" "$out" "127.0.0.1:$PORT: Address already in use"
is "in one line" "$(printf '%s\n' "$out" | wc -l)" 1
check "and nothing was mounted" bash -c "! mountpoint -q '$T/m2'"
out=$("$MOUNTD" --foreground --mount "$T/m2" --state-dir "$T/s2" --pool-dir "$T/p2" \
	--node "${NODE}y" --http 0.0.0.0:0 2>&1)
like "a non-loopback address needs a token" "$out" "not a loopback address: give --http-token"
"${VIRSH[@]}" pool-destroy "hypersdk-${NODE}y" >/dev/null 2>&1
"${VIRSH[@]}" pool-undefine "hypersdk-${NODE}y" >/dev/null 2>&1

# ---- the browser ------------------------------------------------------------------
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ ! -x "$CHROMIUM" ] || [ ! -d "$NPM_DIR/node_modules/playwright-core" ] || [ "$node_major" -lt 18 ]; then
	ok "# SKIP browser test: needs $CHROMIUM, node >= 18 and playwright-core in $NPM_DIR (scripts/deps.sh test)"
else
	is "$b is Running before the click" "$(phase "$b")" Running
	phase_is "$b" Running || tail -n 5 "$M/vms/$b/events" | sed 's/^/# /'
	NODE_PATH=$NPM_DIR/node_modules CHROMIUM="$CHROMIUM" \
		node "$TOP/tests/web/ui.mjs" "$URL" "$b" "$LOGDIR/web-dashboard.png" s1 >"$T/ui.out" 2>&1
	rc=$?
	while IFS= read -r line; do
		case $line in
		"ok - "*) ok "browser: ${line#ok - }" ;;
		"not ok - "*) not_ok "browser: ${line#not ok - }" ;;
		*) echo "# $line" ;;
		esac
	done <"$T/ui.out"
	is "ui.mjs exits 0" "$rc" 0
	is "the click stopped $b in the tree" "$(phase "$b")" Stopped
	is "and in libvirt" "$(domstate "$b")" "shut off"
	check "a screenshot was saved" test -s "$LOGDIR/web-dashboard.png"
	# The page's clone made $b-c (a full clone): not ours to keep.
	[ ! -e "$M/vms/$b-c" ] || "$ONEWRITE" "$M/vms/$b-c/ctl" "delete force" >/dev/null
fi

# ---- the token ----------------------------------------------------------------------
check "SIGTERM stops the daemon (clean exit, no leak report)" stop_mountd
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/token"
# A 1 s idle timeout, and stops that wait 4 s for a guest that ignores
# ACPI: an action outlasting the timeout must still get its answer.
HYPERSDK_HTTP_IDLE_TIMEOUT=1 STOP_TIMEOUT=4 start_web --http-token "$T/token" ||
	not_ok "daemon starts with --http-token"
r=$(post "/api/k8s/vms/default/$b/actions" '{"action":"start"}')
is "with --http-token a POST without it is 401" "$(code "$r")" 401
r=$(post "/api/k8s/vms/default/$b/actions" '{"action":"start"}' -H "Authorization: Bearer wrong-token-wrong-token")
is "a wrong token is 401" "$(code "$r")" 401
is "GETs still work without it" "$(code "$(req GET /api/k8s/vms)")" 200
is "with the token another local user may act (start of running $a: 409)" \
	"$(nobody -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $(cat "$T/token")" \
		--data-binary '{"action":"start"}' "$URL/api/k8s/vms/default/$a/actions")" 409
is "$b still Stopped" "$(phase "$b")" Stopped
r=$(post /api/k8s/snapshots/default/s1/delete '{}')
is "with --http-token a snapshot delete without it is 401" "$(code "$r")" 401
r=$(post /api/k8s/snapshots/default/s1/delete '{}' -H "Authorization: Bearer $(cat "$T/token")")
is "with the token it is 200" "$(code "$r")" 200
check "s1 is gone from the tree" wait_for 5 test ! -e "$M/vms/$b/snapshots/s1"
r=$(post "/api/k8s/vms/default/$b/actions" '{"action":"delete"}' -H "Authorization: Bearer $(cat "$T/token")")
is "with the token, delete is 200" "$(code "$r")" 200
# The tree forgets it through the kernel's entry cache, a moment later.
check "$b is gone from the tree" wait_for 5 test ! -e "$M/vms/$b"
t0=$SECONDS
r=$(post "/api/k8s/vms/default/$a/actions" '{"action":"stop"}' -H "Authorization: Bearer $(cat "$T/token")")
el=$((SECONDS - t0))
is "a stop that outlasts the idle timeout (${el} s > 1 s) gets its answer" "$(code "$r")" 200
check "it did wait for the stop timeout" test "$el" -ge 3
is "$a is Stopped" "$(phase "$a")" Stopped
r=$(post "/api/k8s/vms/default/$a/actions" '{"action":"start"}' -H "Authorization: Bearer $(cat "$T/token")")
is "and starts again" "$(code "$r")" 200
r=$(post "/api/k8s/vms/default/$a/actions" '{"action":"delete","force":true}' -H "Authorization: Bearer $(cat "$T/token")")
is "delete force of running $a is 200" "$(code "$r")" 200
check "$a is gone from libvirt" bash -c "! ${VIRSH[*]} dominfo $a >/dev/null 2>&1"

# An open event stream must not hold the daemon up at SIGTERM.
curl -sS -N --max-time 30 "$URL/api/k8s/events" >"$T/sse2" 2>/dev/null &
SSE_PID=$!
wait_for 5 grep -q "event: hello" "$T/sse2"
t0=$SECONDS
check "SIGTERM stops the daemon and the dashboard" stop_mountd
check "at once, with an event stream open ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -lt 5
wait "$SSE_PID" 2>/dev/null
SSE_PID=
check "the port is free again" bash -c "! curl -s --max-time 2 '$URL/healthz' >/dev/null"
done_testing
