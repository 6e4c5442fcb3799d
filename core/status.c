/* VM status: the flat text of vms/NAME/status and the CRD status object.
 *
 * The text is one "key value" pair per line; the value is the rest of the
 * line, "-" when empty.  Scripts depend on these keys, so they only ever
 * get added to (docs/status.md):
 *
 *   phase        Pending|Creating|Running|Stopped|Paused|Migrating|Failed|
 *                Unknown (always the first line)
 *   name         the VM's name
 *   node         owner node
 *   uuid         libvirt domain UUID
 *   accel        kvm or tcg
 *   cpus         vCPUs the domain has now
 *   memory       memory the domain has now, as a quantity ("2Gi")
 *   disk         sum of allocated disk sizes, as a quantity
 *   pid          QEMU process id
 *   started      RFC 3339 UTC start time
 *   vnc          address:port of the VNC server
 *   console      serial console pty or log file
 *   operation    the action in flight
 *   restarts     restarts after stops nobody asked for (highAvailability)
 *   nextRestart  RFC 3339 UTC time of the next one, while it waits
 *   carbon.*     carbonAware: the reading a start was last decided on
 *                (intensity, zone, provider, readingTime), a start that
 *                waits (waitingSince, deadline, nextWindow) and how long
 *                the last one waited (lastDelay, seconds)
 *   condition.T            true or false, for T in Ready, DiskReady,
 *                          NetworkReady, AgentConnected
 *   condition.T.reason     CamelCase reason
 *   condition.T.message    human readable text
 *   condition.T.since      RFC 3339 time of the last transition
 */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const phases[] = {
	[CORE_PHASE_PENDING] = "Pending",     [CORE_PHASE_CREATING] = "Creating",
	[CORE_PHASE_RUNNING] = "Running",     [CORE_PHASE_STOPPED] = "Stopped",
	[CORE_PHASE_PAUSED] = "Paused",       [CORE_PHASE_MIGRATING] = "Migrating",
	[CORE_PHASE_FAILED] = "Failed",       [CORE_PHASE_UNKNOWN] = "Unknown",
};

static const char *const conds[] = {
	[CORE_COND_READY] = "Ready",
	[CORE_COND_DISK_READY] = "DiskReady",
	[CORE_COND_NETWORK_READY] = "NetworkReady",
	[CORE_COND_AGENT_CONNECTED] = "AgentConnected",
	[CORE_COND_RESTART_REQUIRED] = "RestartRequired",
	[CORE_COND_CARBON_DELAYED] = "CarbonDelayed",
};

const char *core_phase_name(enum core_phase p)
{
	if ((unsigned)p >= sizeof(phases) / sizeof(phases[0]))
		return "Unknown";
	return phases[p];
}

int core_phase_parse(const char *s, enum core_phase *out)
{
	for (size_t i = 0; s && i < sizeof(phases) / sizeof(phases[0]); i++) {
		if (strcmp(s, phases[i]) == 0) {
			*out = (enum core_phase)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *core_cond_name(enum core_cond_type t)
{
	if ((unsigned)t >= CORE_COND_COUNT)
		return "Unknown";
	return conds[t];
}

void core_status_init(struct core_status *st)
{
	memset(st, 0, sizeof(*st));
	st->phase = CORE_PHASE_PENDING;
	st->vnc_port = -1;
	st->carbon.intensity = -1;
}

void core_status_cond(struct core_status *st, enum core_cond_type t,
		      bool status, const char *reason, const char *message,
		      time_t now)
{
	struct core_cond *c;

	if ((unsigned)t >= CORE_COND_COUNT)
		return;
	c = &st->cond[t];
	if (c->status != status || c->last_transition == 0)
		c->last_transition = now;
	c->status = status;
	snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
	snprintf(c->message, sizeof(c->message), "%s", message ? message : "");
}

/* ---- text ----------------------------------------------------------- */

struct out {
	char *buf;
	size_t len, pos;
	bool full;
};

static void put_char(struct out *o, char c)
{
	if (o->pos + 1 >= o->len) {
		o->full = true;
		return;
	}
	o->buf[o->pos++] = c;
}

/* One line; control bytes would break the one-pair-per-line format. */
static void put(struct out *o, const char *key, const char *val)
{
	for (const char *p = key; *p; p++)
		put_char(o, *p);
	put_char(o, ' ');
	if (!val || !*val)
		val = "-";
	for (const char *p = val; *p; p++) {
		unsigned char c = (unsigned char)*p;

		put_char(o, c < 0x20 || c == 0x7f ? ' ' : (char)c);
	}
	put_char(o, '\n');
}

static void put_time(struct out *o, const char *key, time_t t)
{
	char b[32] = "";

	if (t)
		core_rfc3339(t, b, sizeof(b));
	put(o, key, b);
}

static void put_conds(struct out *o, const struct core_status *st)
{
	char key[64];

	for (int i = 0; i < CORE_COND_COUNT; i++) {
		const struct core_cond *c = &st->cond[i];

		snprintf(key, sizeof(key), "condition.%s", conds[i]);
		put(o, key, c->status ? "true" : "false");
		snprintf(key, sizeof(key), "condition.%s.reason", conds[i]);
		put(o, key, c->reason);
		snprintf(key, sizeof(key), "condition.%s.message", conds[i]);
		put(o, key, c->message);
		snprintf(key, sizeof(key), "condition.%s.since", conds[i]);
		put_time(o, key, c->last_transition);
	}
}

static void put_carbon(struct out *o, const struct core_carbon_status *c)
{
	char b[32] = "";

	if (c->intensity >= 0)
		snprintf(b, sizeof(b), "%d", c->intensity);
	put(o, "carbon.intensity", b);
	put(o, "carbon.zone", c->zone);
	put(o, "carbon.provider", c->provider);
	put_time(o, "carbon.readingTime", c->reading_at);
	put_time(o, "carbon.waitingSince", c->since);
	put_time(o, "carbon.deadline", c->deadline);
	put_time(o, "carbon.nextWindow", c->next_window);
	snprintf(b, sizeof(b), "%u", c->last_delay_s);
	put(o, "carbon.lastDelay", b);
}

int core_status_render(const struct core_status *st, const char *name,
		       char *buf, size_t len)
{
	struct out o = { .buf = buf, .len = len };
	char b[128] = "";

	put(&o, "phase", core_phase_name(st->phase));
	put(&o, "name", name);
	put(&o, "node", st->node);
	put(&o, "uuid", st->uuid);
	put(&o, "accel", st->accel);
	snprintf(b, sizeof(b), "%d", st->cpus);
	put(&o, "cpus", b);
	core_qty_format(st->memory, b, sizeof(b));
	put(&o, "memory", b);
	core_qty_format(st->disk_bytes, b, sizeof(b));
	put(&o, "disk", b);
	b[0] = '\0';
	if (st->qemu_pid > 0)
		snprintf(b, sizeof(b), "%d", st->qemu_pid);
	put(&o, "pid", b);
	put_time(&o, "started", st->start_time);
	b[0] = '\0';
	if (st->vnc_port >= 0)
		snprintf(b, sizeof(b), strchr(st->vnc_address, ':') ?
			 "[%s]:%d" : "%s:%d",
			 st->vnc_address[0] ? st->vnc_address : "127.0.0.1",
			 st->vnc_port);
	put(&o, "vnc", b);
	put(&o, "console", st->console);
	put(&o, "operation", st->operation);
	snprintf(b, sizeof(b), "%u", st->restarts);
	put(&o, "restarts", b);
	put_time(&o, "nextRestart", st->next_restart);
	put_carbon(&o, &st->carbon);
	put_conds(&o, st);
	if (o.full)
		return -ENOSPC;
	buf[o.pos] = '\0';
	return (int)o.pos;
}

/* ---- JSON ----------------------------------------------------------- */

static void add_str(json_object *o, const char *key, const char *v)
{
	if (v && *v)
		json_object_object_add(o, key, json_object_new_string(v));
}

static void add_time(json_object *o, const char *key, time_t t)
{
	char b[32];

	if (!t)
		return;
	core_rfc3339(t, b, sizeof(b));
	json_object_object_add(o, key, json_object_new_string(b));
}

static void add_qty(json_object *o, const char *key, uint64_t v)
{
	char b[32];

	if (!v)
		return;
	core_qty_format(v, b, sizeof(b));
	json_object_object_add(o, key, json_object_new_string(b));
}

static json_object *conds_to_json(const struct core_status *st)
{
	json_object *a = json_object_new_array();

	for (int i = 0; i < CORE_COND_COUNT; i++) {
		const struct core_cond *c = &st->cond[i];
		json_object *o;

		/* Never set: Kubernetes omits such conditions too. */
		if (!c->status && !c->reason[0] && !c->last_transition)
			continue;
		o = json_object_new_object();
		add_str(o, "type", conds[i]);
		add_str(o, "status", c->status ? "True" : "False");
		add_str(o, "reason", c->reason);
		add_str(o, "message", c->message);
		add_time(o, "lastTransitionTime", c->last_transition);
		json_object_array_add(a, o);
	}
	return a;
}

static json_object *carbon_to_json(const struct core_carbon_status *c)
{
	json_object *o = json_object_new_object();

	if (c->intensity >= 0)
		json_object_object_add(o, "intensity",
				       json_object_new_int(c->intensity));
	add_str(o, "zone", c->zone);
	add_str(o, "provider", c->provider);
	add_time(o, "readingTime", c->reading_at);
	add_time(o, "waitingSince", c->since);
	add_time(o, "deadline", c->deadline);
	add_time(o, "nextWindow", c->next_window);
	if (c->last_delay_s)
		json_object_object_add(o, "lastDelaySeconds",
				       json_object_new_int64(c->last_delay_s));
	return o;
}

json_object *core_status_to_json(const struct core_status *st)
{
	json_object *o = json_object_new_object();

	json_object *vnc = json_object_new_object();
	json_object *res = json_object_new_object();

	add_str(o, "phase", core_phase_name(st->phase));
	add_str(o, "nodeName", st->node);
	add_str(o, "uuid", st->uuid);
	add_str(o, "accel", st->accel);
	/* Nested as the CRD's status schema has them. */
	if (st->cpus)
		json_object_object_add(res, "cpus", json_object_new_int(st->cpus));
	add_qty(res, "memory", st->memory);
	add_qty(res, "disk", st->disk_bytes);
	json_object_object_add(o, "resources", res);
	if (st->qemu_pid > 0)
		json_object_object_add(o, "qemuPid",
				       json_object_new_int(st->qemu_pid));
	add_time(o, "startTime", st->start_time);
	add_str(vnc, "address", st->vnc_address);
	if (st->vnc_port >= 0)
		json_object_object_add(vnc, "port",
				       json_object_new_int(st->vnc_port));
	json_object_object_add(o, "vnc", vnc);
	add_str(o, "console", st->console);
	add_str(o, "operation", st->operation);
	if (st->restarts)
		json_object_object_add(o, "restarts",
				       json_object_new_int64(st->restarts));
	add_time(o, "nextRestart", st->next_restart);
	if (st->carbon.intensity >= 0 || st->carbon.since ||
	    st->carbon.last_delay_s)
		json_object_object_add(o, "carbon", carbon_to_json(&st->carbon));
	json_object_object_add(o, "conditions", conds_to_json(st));
	return o;
}

static int get_str(json_object *o, const char *key, char *buf, size_t len)
{
	json_object *f;

	if (!json_object_object_get_ex(o, key, &f) || !f)
		return 0;
	if (!json_object_is_type(f, json_type_string))
		return -EINVAL;
	snprintf(buf, len, "%s", json_object_get_string(f));
	return 0;
}

static int get_int(json_object *o, const char *key, int *out)
{
	json_object *f;

	if (!json_object_object_get_ex(o, key, &f) || !f)
		return 0;
	if (!json_object_is_type(f, json_type_int))
		return -EINVAL;
	*out = json_object_get_int(f);
	return 0;
}

static int get_count(json_object *o, const char *key, unsigned *out)
{
	int v = 0;
	int r = get_int(o, key, &v);

	if (r == 0 && v < 0)
		r = -EINVAL;
	if (r == 0)
		*out = (unsigned)v;
	return r;
}

static int get_time(json_object *o, const char *key, time_t *out)
{
	char b[40] = "";
	struct tm tm = { 0 };
	char *end;

	if (get_str(o, key, b, sizeof(b)) < 0)
		return -EINVAL;
	if (!b[0])
		return 0;
	end = strptime(b, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return -EINVAL;
	*out = timegm(&tm);
	return 0;
}

static int get_qty(json_object *o, const char *key, uint64_t *out)
{
	char b[64] = "", err[CORE_ERR_MAX];

	if (get_str(o, key, b, sizeof(b)) < 0)
		return -EINVAL;
	return b[0] ? core_qty_parse(b, out, err, sizeof(err)) : 0;
}

static int cond_from_json(json_object *c, struct core_status *st)
{
	char type[32] = "", status[8] = "";
	struct core_cond *cd = NULL;
	int r;

	if (!json_object_is_type(c, json_type_object))
		return -EINVAL;
	r = get_str(c, "type", type, sizeof(type));
	for (int i = 0; r == 0 && i < CORE_COND_COUNT; i++)
		if (strcmp(type, conds[i]) == 0)
			cd = &st->cond[i];
	/* Conditions added by other controllers are theirs to keep. */
	if (r < 0 || !cd)
		return r;
	r = get_str(c, "status", status, sizeof(status));
	cd->status = strcmp(status, "True") == 0;
	if (r == 0)
		r = get_str(c, "reason", cd->reason, sizeof(cd->reason));
	if (r == 0)
		r = get_str(c, "message", cd->message, sizeof(cd->message));
	if (r == 0)
		r = get_time(c, "lastTransitionTime", &cd->last_transition);
	return r;
}

static int conds_from_json(json_object *o, struct core_status *st)
{
	json_object *a;
	int r = 0;

	if (!json_object_object_get_ex(o, "conditions", &a) || !a)
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return -EINVAL;
	for (size_t i = 0; r == 0 && i < json_object_array_length(a); i++)
		r = cond_from_json(json_object_array_get_idx(a, i), st);
	return r;
}

static int nested_from_json(json_object *o, struct core_status *st)
{
	json_object *res = NULL, *vnc = NULL;
	int r = 0;

	json_object_object_get_ex(o, "resources", &res);
	json_object_object_get_ex(o, "vnc", &vnc);
	if ((res && !json_object_is_type(res, json_type_object)) ||
	    (vnc && !json_object_is_type(vnc, json_type_object)))
		return -EINVAL;
	if (res)
		r = get_int(res, "cpus", &st->cpus);
	if (res && r == 0)
		r = get_qty(res, "memory", &st->memory);
	if (res && r == 0)
		r = get_qty(res, "disk", &st->disk_bytes);
	if (vnc && r == 0)
		r = get_str(vnc, "address", st->vnc_address,
			    sizeof(st->vnc_address));
	if (vnc && r == 0)
		r = get_int(vnc, "port", &st->vnc_port);
	return r;
}

static int carbon_from_json(json_object *o, struct core_carbon_status *c)
{
	json_object *j = NULL;
	int r = 0;

	if (!json_object_object_get_ex(o, "carbon", &j) || !j)
		return 0;
	if (!json_object_is_type(j, json_type_object))
		return -EINVAL;
	r = get_int(j, "intensity", &c->intensity);
	if (r == 0 && c->intensity < -1)
		r = -EINVAL;
	if (r == 0)
		r = get_str(j, "zone", c->zone, sizeof(c->zone));
	if (r == 0)
		r = get_str(j, "provider", c->provider, sizeof(c->provider));
	if (r == 0)
		r = get_time(j, "readingTime", &c->reading_at);
	if (r == 0)
		r = get_time(j, "waitingSince", &c->since);
	if (r == 0)
		r = get_time(j, "deadline", &c->deadline);
	if (r == 0)
		r = get_time(j, "nextWindow", &c->next_window);
	if (r == 0)
		r = get_count(j, "lastDelaySeconds", &c->last_delay_s);
	return r;
}

int core_status_from_json(json_object *o, struct core_status *st)
{
	char phase[32] = "";
	int r;

	core_status_init(st);
	if (!o)
		return 0;
	if (!json_object_is_type(o, json_type_object))
		return -EINVAL;
	r = get_str(o, "phase", phase, sizeof(phase));
	if (r == 0 && phase[0])
		r = core_phase_parse(phase, &st->phase);
	if (r == 0)
		r = get_str(o, "nodeName", st->node, sizeof(st->node));
	if (r == 0)
		r = get_str(o, "uuid", st->uuid, sizeof(st->uuid));
	if (r == 0)
		r = get_str(o, "accel", st->accel, sizeof(st->accel));
	if (r == 0)
		r = nested_from_json(o, st);
	if (r == 0)
		r = get_int(o, "qemuPid", &st->qemu_pid);
	if (r == 0)
		r = get_time(o, "startTime", &st->start_time);
	if (r == 0)
		r = get_str(o, "console", st->console, sizeof(st->console));
	if (r == 0)
		r = get_str(o, "operation", st->operation,
			    sizeof(st->operation));
	if (r == 0)
		r = get_count(o, "restarts", &st->restarts);
	if (r == 0)
		r = get_time(o, "nextRestart", &st->next_restart);
	if (r == 0)
		r = carbon_from_json(o, &st->carbon);
	if (r == 0)
		r = conds_from_json(o, st);
	return r < 0 ? -EINVAL : 0;
}
