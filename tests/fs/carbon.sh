#!/usr/bin/env bash
# carbonAware starts against a loopback server that speaks Electricity
# Maps' and the UK Carbon Intensity API's documented formats, scripted to
# change its readings (tests/carbon/server.py): a start waits, Pending,
# while the grid is above maxIntensity and libvirt never runs the guest;
# it runs within an interval of the reading coming under the limit; the
# deadline (maxDelay), `start now` and `stop` do as named; a provider that
# times out, refuses the token, asks to wait (429), fails (500), answers
# garbage or a stale reading crashes nothing and the deadline still
# holds; the token is in no output; the same for ukgrid and the file
# provider; /metrics has the gauges.
#   CARBON_QUICK  set (the sanitizer run): the failure modes one by one and
#                 ukgrid are left out; carbon_poll meets each failure under
#                 the sanitizers in unit_carbon, and the plain run does all
. "$(dirname "$0")/lib.sh"

SRV_PID=
stop_server() { [ -z "$SRV_PID" ] || kill "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null; SRV_PID=; }
trap 'stop_server; cleanup' EXIT

TOKEN=tok-$$-s3cr3t-Zq9
printf '%s\n' "$TOKEN" >"$T/token"
chmod 600 "$T/token"
# set_grid KEY=JSON...: what the server says from the next request on.
set_grid() {
	local kv body=
	for kv in "$@"; do body+="${body:+,}\"${kv%%=*}\":${kv#*=}"; done
	printf '{%s,"token":"%s"}\n' "$body" "$TOKEN" >"$T/grid.new" && mv "$T/grid.new" "$T/grid"
}
set_grid intensity=302 'mode="ok"' 'forecast=[[30,150]]'
python3 "$TOP/tests/carbon/server.py" --port-file "$T/port" --state "$T/grid" \
	--log "$T/requests" 2>>"$T/server.log" &
SRV_PID=$!
wait_for 10 test -s "$T/port" || { not_ok "the loopback provider starts"; done_testing; }
URL=http://127.0.0.1:$(cat "$T/port")
HPORT=$((20000 + $$ % 20000))

carbon_args() { # PROVIDER ZONE: the daemon's options for it
	echo --carbon-provider "$1" --carbon-zone "$2" --carbon-url "$URL" \
		--carbon-token-file "$T/token" --carbon-interval 1
}
# shellcheck disable=SC2046
start_mountd $(carbon_args electricitymaps DE) --http "127.0.0.1:$HPORT" --stats-interval 1 ||
	{ not_ok "daemon starts with --carbon-provider electricitymaps"; done_testing; }

nkey() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$M/nodes/$NODE/status"; }
nkey_is() { [ "$(nkey "$1")" = "$2" ]; }
check "nodes/ shows the grid: carbonIntensity 302" wait_for 15 nkey_is carbonIntensity 302
is "carbonZone DE" "$(nkey carbonZone)" DE
is "carbonProvider electricitymaps" "$(nkey carbonProvider)" electricitymaps
like "carbonUpdated is the reading's time" "$(nkey carbonUpdated)" '^20[0-9-]+T[0-9:]+Z$'

# carbon_vm NAME [MAXDELAY] [RUNNING]: a stopped VM with carbonAware on
# (maxIntensity 200); RUNNING true asks for it in the same spec write.
carbon_vm() {
	"$ONEWRITE" "$M/vms/ctl" "create $1 memory=64Mi disk=64Mi" >/dev/null || return 1
	sed '/^running:/d' "$M/vms/$1/spec" >"$T/$1.yaml"
	printf 'running: %s\ncarbonAware:\n  enabled: true\n  maxIntensity: 200\n' \
		"${3:-false}" >>"$T/$1.yaml"
	[ -z "${2:-}" ] || printf '  maxDelay: %s\n' "$2" >>"$T/$1.yaml"
	"$ONEWRITE" "$M/vms/$1/spec" "$(cat "$T/$1.yaml")"
}
OK2=$'ok\nok'     # two writes that succeed
ck() { status_key "$1" "condition.CarbonDelayed${2:+.$2}"; }
off() { [ "$(domstate "$1")" = "shut off" ]; }
running() { phase_is "$1" Running && [ "$(domstate "$1")" = running ]; }
force_stop() { "$ONEWRITE" "$M/vms/$1/ctl" "stop force" >/dev/null; }

# ---- deferral: spec.running true and `start` both wait while 302 > 200
a=${P}a
b=${P}b
is "spec write with running: true and carbonAware" "$(carbon_vm "$a" 3h true)" ok
check "it waits: phase Pending" wait_for 10 phase_is "$a" Pending
is "CarbonDelayed true" "$(ck "$a")" true
is "its reason is IntensityAbove" "$(ck "$a" reason)" IntensityAbove
like "its message names reading, zone, provider, time and deadline" "$(ck "$a" message)" \
	'302 gCO2eq/kWh in DE \(electricitymaps, reading 20[0-9T:-]+Z\), above maxIntensity 200; starts when under it, or at 20[0-9T:-]+Z at the latest'
like "and the forecast's next window under the limit" "$(ck "$a" message)" 'forecast under the limit from 20'
like "status carbon.nextWindow" "$(status_key "$a" carbon.nextWindow)" '^20'
like "status carbon.deadline" "$(status_key "$a" carbon.deadline)" '^20'
is "status carbon.intensity 302" "$(status_key "$a" carbon.intensity)" 302
like "spec.running is true (what was asked)" "$(cat "$M/vms/$a/spec")" 'running: true'
like "events say CarbonDelayed" "$(cat "$M/vms/$a/events")" CarbonDelayed
is "carbon_vm $b, then echo start > ctl" "$(carbon_vm "$b" 1h && "$ONEWRITE" "$M/vms/$b/ctl" start)" "$OK2"
is "start answers at once; $b waits too" "$(phase "$b")" Pending
sleep 2
check "two polls later libvirt has started neither" eval 'off "$a" && off "$b"'
like "/metrics: hypersdk_grid_carbon_intensity" "$(curl -s "http://127.0.0.1:$HPORT/metrics")" \
	'hypersdk_grid_carbon_intensity\{zone="DE",provider="electricitymaps"\} 302'
like "/metrics: hypersdk_vm_carbon_delay_seconds of a waiting VM" \
	"$(curl -s "http://127.0.0.1:$HPORT/metrics")" "hypersdk_vm_carbon_delay_seconds\\{vm=\"$a\",namespace=\"[a-z]*\",waiting=\"true\"\\} [1-9]"

set_grid intensity=150 'mode="ok"'
t0=$SECONDS
check "the grid drops to 150: $a runs" wait_for 15 running "$a"
check "and $b" wait_for 15 running "$b"
check "within about an interval ($((SECONDS - t0)) s)" test $((SECONDS - t0)) -le 5
is "CarbonDelayed false" "$(ck "$a")" false
is "reason IntensityBelow" "$(ck "$a" reason)" IntensityBelow
like "events say CarbonStart" "$(cat "$M/vms/$a/events")" 'CarbonStart .*150 gCO2eq/kWh'
like "carbon.lastDelay says how long it waited" "$(status_key "$a" carbon.lastDelay)" '^[1-9][0-9]*$'
is "carbon.waitingSince is gone" "$(status_key "$a" carbon.waitingSince)" -
force_stop "$a"; force_stop "$b"

c=${P}c
is "under the limit a start goes at once" "$(carbon_vm "$c" 1h && "$ONEWRITE" "$M/vms/$c/ctl" start)" "$OK2"
is "$c runs" "$(phase "$c")" Running
force_stop "$c"

# ---- deadline, start now, stop
set_grid intensity=302 'mode="ok"'
check "the grid is back at 302" wait_for 10 nkey_is carbonIntensity 302
d=${P}d
is "maxDelay 4s: start" "$(carbon_vm "$d" 4s && "$ONEWRITE" "$M/vms/$d/ctl" start)" "$OK2"
is "it waits" "$(phase "$d")" Pending
check "the deadline starts it" wait_for 15 running "$d"
is "reason Deadline" "$(ck "$d" reason)" Deadline
like "the event says so" "$(cat "$M/vms/$d/events")" 'CarbonStart maxDelay reached after [3-9]s; starting with 302'
force_stop "$d"

e=${P}e
is "maxDelay 1h: start" "$(carbon_vm "$e" && "$ONEWRITE" "$M/vms/$e/ctl" start)" "$OK2"
is "it waits (6h by default)" "$(phase "$e")" Pending
is "start now" "$("$ONEWRITE" "$M/vms/$e/ctl" "start now")" ok
check "runs at once" running "$e"
is "reason StartNow" "$(ck "$e" reason)" StartNow
force_stop "$e"

f=${P}f
is "start $f (a carbonAware VM)" "$(carbon_vm "$f" 1h && "$ONEWRITE" "$M/vms/$f/ctl" start)" "$OK2"
is "stop while it waits" "$("$ONEWRITE" "$M/vms/$f/ctl" stop)" ok
is "phase Stopped" "$(phase "$f")" Stopped
is "reason Cancelled" "$(ck "$f" reason)" Cancelled
like "spec.running is false" "$(cat "$M/vms/$f/spec")" 'running: false'
like "events say CarbonCancelled" "$(cat "$M/vms/$f/events")" CarbonCancelled
set_grid intensity=100 'mode="ok"'
sleep 3
check "a greener grid does not start it" off "$f"
is "start now on a VM that does not wait: ok" "$("$ONEWRITE" "$M/vms/$f/ctl" "start now")" ok
force_stop "$f"
is "start now is for start only" "$("$ONEWRITE" "$M/vms/$f/ctl" "stop now")" EINVAL

# ---- a provider that misbehaves: the deadline holds, nothing crashes
g=${P}g
set_grid intensity=302 'mode="ok"'
check "302 again" wait_for 10 nkey_is carbonIntensity 302
# Each failure alone, the grid answering between them: the backoff
# after one failure is two intervals.
modes=(401 429 500 garbage timeout)
[ -z "${CARBON_QUICK:-}" ] || modes=()
for mode in "${modes[@]}"; do
	set_grid intensity=100 "mode=\"$mode\"" retry_after=2
	check "mode $mode: nodes/ shows the error" wait_for 20 eval '[ "$(nkey carbonError)" != - ]'
	is "mode $mode: the cached reading stands" "$(nkey carbonIntensity)" 302
	set_grid intensity=302 'mode="ok"'
	wait_for 20 nkey_is carbonError -
done
if [ -z "${CARBON_QUICK:-}" ]; then
	log=$(grep -h 'carbon' "$T/mountd.log")
	like "the log says the token was refused (401)" "$log" '401'
	like "the log says 429" "$log" '429'
	like "the log says 500" "$log" '500'
fi
set_grid intensity=100 'mode="500"'
check "the provider fails again" wait_for 20 eval '[ "$(nkey carbonError)" != - ]'
is "start $g (maxDelay 3s) while the provider fails" \
	"$(carbon_vm "$g" 3s && "$ONEWRITE" "$M/vms/$g/ctl" start)" "$OK2"
check "it starts at the deadline" wait_for 20 running "$g"
is "reason Deadline" "$(ck "$g" reason)" Deadline
force_stop "$g"
check "the daemon is alive" kill -0 "$MOUNTD_PID"
h=${P}h
set_grid intensity=100 'mode="stale"'
check "a reading 6 hours old is not fresh" wait_for 20 nkey_is carbonFresh false
is "start $h (maxDelay 3s) with only a stale reading of 100" \
	"$(carbon_vm "$h" 3s && "$ONEWRITE" "$M/vms/$h/ctl" start)" "$OK2"
is "it waits: NoReading" "$(ck "$h" reason)" NoReading
like "the message says the reading is stale" "$(ck "$h" message)" 'stale reading: 100'
check "and starts at the deadline" wait_for 20 running "$h"
force_stop "$h"

# ---- secrets
like "the server saw the auth-token header" "$(head -c 100000 "$T/requests")" '"auth-token": "present"'
leaks() {
	grep -rqsF "$TOKEN" "$T/mountd.log" "$M/nodes/" "$M/vms/"*/status \
		"$M/vms/"*/events "$M/vms/"*/err "$M/vms/err" && return 0
	curl -s "http://127.0.0.1:$HPORT/metrics" "http://127.0.0.1:$HPORT/api/k8s/nodes" | grep -qF "$TOKEN"
}
check "the token is in no log, status, event, err, nodes/ or HTTP answer" eval '! leaks'
stop_mountd

# ---- bad configuration is refused before the mount
bad() { timeout 20 "$MOUNTD" --foreground --mount "$M" --state-dir "$STATE" --pool-dir "$POOL" \
	--node "$NODE" "$@" 2>&1; }
like "--carbon-url with a path is refused" "$(bad $(carbon_args electricitymaps DE | sed "s|$URL|$URL/v3|"))" '--carbon-provider electricitymaps: url: expected only a scheme, a host and a port'
like "--carbon-provider bogus is refused" "$(bad --carbon-provider bogus)" 'usage: hypersdk-mountd'
like "a zone that is not one is refused" "$(bad $(carbon_args electricitymaps 'DE;x'))" '--carbon-provider electricitymaps: zone: expected'

# ---- ukgrid (regional) and file, the same deferral
if [ -z "${CARBON_QUICK:-}" ]; then
	set_grid intensity=302 'mode="ok"'
	# shellcheck disable=SC2046
	start_mountd $(carbon_args ukgrid GB-13) ||
		{ not_ok "daemon starts with --carbon-provider ukgrid"; done_testing; }
	check "ukgrid: nodes/ shows 302" wait_for 15 nkey_is carbonIntensity 302
	u=${P}u
	is "ukgrid: start" "$(carbon_vm "$u" 1h && "$ONEWRITE" "$M/vms/$u/ctl" start)" "$OK2"
	is "ukgrid: it waits" "$(phase "$u")" Pending
	like "ukgrid: the message names the provider" "$(ck "$u" message)" 'ukgrid'
	set_grid intensity=150 'mode="ok"'
	check "ukgrid: at 150 it runs" wait_for 15 running "$u"
	force_stop "$u"
	like "ukgrid: the regional path was asked" "$(cat "$T/requests")" '/regional/regionid/13'
	stop_mountd
fi

printf '{"zone":"site-1","carbonIntensity":302,"datetime":"%s"}\n' \
	"$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$T/carbon.json"
start_mountd --carbon-provider file --carbon-file "$T/carbon.json" --carbon-zone site-1 \
	--carbon-interval 1 || { not_ok "daemon starts with --carbon-provider file"; done_testing; }
check "file: nodes/ shows 302" wait_for 15 nkey_is carbonIntensity 302
v=${P}v
is "file: start" "$(carbon_vm "$v" 1h && "$ONEWRITE" "$M/vms/$v/ctl" start)" "$OK2"
is "file: it waits" "$(phase "$v")" Pending
printf '{"zone":"site-1","carbonIntensity":150,"datetime":"%s"}\n' \
	"$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$T/carbon.new" && mv "$T/carbon.new" "$T/carbon.json"
check "file: a cron job writes 150 and it runs" wait_for 15 running "$v"
force_stop "$v"
printf '{"zone":"site-1","carbonIntensity":302,"datetime":"%s"}\n' \
	"$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$T/carbon.new" && mv "$T/carbon.new" "$T/carbon.json"
check "file: back at 302" wait_for 15 nkey_is carbonIntensity 302
x=${P}x
is "file: start $x" "$(carbon_vm "$x" 1h && "$ONEWRITE" "$M/vms/$x/ctl" start)" "$OK2"
is "file: it waits" "$(phase "$x")" Pending
stop_mountd

# ---- a wait outlives the daemon; without a provider nothing waits
start_mountd || { not_ok "daemon starts without a carbon provider"; done_testing; }
check "restarted without --carbon-provider, the VM that waited runs" wait_for 15 running "$x"
like "its events say CarbonIgnored" "$(cat "$M/vms/$x/events")" 'CarbonIgnored carbonAware: node [a-z0-9]+ has no --carbon-provider'
force_stop "$x"
is "nodes/ says carbonProvider none" "$(nkey carbonProvider)" none
stop_mountd

done_testing
