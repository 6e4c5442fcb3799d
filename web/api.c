/* The JSON API under /api/k8s/.  Reads copy from the model under its read
 * lock and serialize after dropping it; actions call the daemon's ctl
 * with a parsed core_ctl, exactly as a ctl write does, and record the
 * outcome in err and events the way fs does. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "web/priv.h"

char *web_json_text(json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE);
	char *r = strdup(s ? s : "null");

	json_object_put(o);
	return r;
}

char *web_json_error(const char *msg)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(msg));
	return web_json_text(o);
}

json_object *web_json_list(const char *kind, json_object *items)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "apiVersion",
			       json_object_new_string(CORE_API_VERSION));
	json_object_object_add(o, "kind", json_object_new_string(kind));
	json_object_object_add(o, "items", items);
	return o;
}

/* The stats text as {"cpu.time_ns": 123, ...}. */
static json_object *stats_json(const struct core_vm *vm)
{
	json_object *o = json_object_new_object();
	const char *p = vm->txt_stats, *end = p ? p + vm->len_stats : NULL;
	char key[128];
	unsigned long long v;

	while (p && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char line[256];

		if (n < sizeof(line)) {
			memcpy(line, p, n);
			line[n] = '\0';
			if (sscanf(line, "%127s %llu", key, &v) == 2)
				json_object_object_add(o, key,
					json_object_new_int64((int64_t)v));
		}
		p += n + 1;
	}
	return o;
}

static uint64_t stat_u64(const struct core_vm *vm, const char *key)
{
	size_t kl = strlen(key);
	const char *p = vm->txt_stats, *end = p ? p + vm->len_stats : NULL;

	while (p && p + kl < end) {
		if (!strncmp(p, key, kl) && p[kl] == ' ')
			return strtoull(p + kl + 1, NULL, 10);
		p = memchr(p, '\n', (size_t)(end - p));
		p = p ? p + 1 : end;
	}
	return 0;
}

static uint64_t disk_bytes(const struct core_vm *vm)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < vm->spec.ndisks; i++)
		sum += vm->spec.disks[i].size;
	return sum ? sum : vm->st.disk_bytes;
}

/* Numbers the page adds up and draws, so it never parses quantities.
 * The stats thread clears a stopped VM's sample only on its next pass:
 * usage counts only while the domain is active. */
static json_object *usage_json(const struct core_vm *vm)
{
	json_object *u = json_object_new_object();
	bool active = vm->st.phase == CORE_PHASE_RUNNING ||
		      vm->st.phase == CORE_PHASE_PAUSED;

	json_object_object_add(u, "cpus", json_object_new_int(vm->spec.cpus));
	json_object_object_add(u, "memoryBytes",
			       json_object_new_int64((int64_t)vm->spec.memory));
	json_object_object_add(u, "diskBytes",
			       json_object_new_int64((int64_t)disk_bytes(vm)));
	json_object_object_add(u, "cpuSeconds", json_object_new_double(
		active ? (double)stat_u64(vm, "cpu.time_ns") / 1e9 : 0));
	json_object_object_add(u, "memoryRssBytes", json_object_new_int64(
		active ? (int64_t)stat_u64(vm, "memory.rss_bytes") : 0));
	json_object_object_add(u, "stats", stats_json(vm));
	return u;
}

/* Model lock held.  Without READ (another member's VM) what the tree
 * shows the group: metadata and status, not the spec (cloud-init
 * secrets), err or usage. */
static json_object *vm_json(const struct core_vm *vm, bool full)
{
	json_object *o = core_vm_to_object(vm);

	if (!full) {
		json_object_object_del(o, "spec");
		return o;
	}
	json_object_object_add(o, "usage", usage_json(vm));
	json_object_object_add(o, "err", json_object_new_string(vm->err));
	return o;
}

struct listing {
	struct web *w;
	const struct core_cred *who;
	json_object *items;
};

static int add_vm(struct core_vm *vm, void *arg)
{
	struct listing *l = arg;

	if (web_may(l->w, l->who, vm->owner, CORE_R_SEE) == 0)
		json_object_array_add(l->items, vm_json(vm, web_may(l->w, l->who,
			vm->owner, CORE_R_READ) == 0));
	return 0;
}

static unsigned get_vms(struct web *w, const struct core_cred *who,
			char **body)
{
	struct listing l = { w, who, json_object_new_array() };
	json_object *items = l.items, *o;

	core_model_rdlock(w->cfg.model);
	core_model_each(w->cfg.model, add_vm, &l);
	core_model_unlock(w->cfg.model);
	o = web_json_list("VirtualMachineList", items);
	json_object_object_add(o, "node", json_object_new_string(
		w->cfg.node ? w->cfg.node : ""));
	*body = web_json_text(o);
	return 200;
}

/* Model lock held.  NULL when there is no such VM in that namespace. */
static struct core_vm *find(struct web *w, const struct web_route *r)
{
	struct core_vm *vm = core_model_find(w->cfg.model, r->name);

	return vm && !strcmp(vm->ns, r->ns) ? vm : NULL;
}

static unsigned not_found(const struct web_route *r, char **body)
{
	char msg[2 * CORE_NAME_MAX + 32];

	snprintf(msg, sizeof(msg), "vm %s/%s does not exist", r->ns, r->name);
	*body = web_json_error(msg);
	return 404;
}

static unsigned get_vm(struct web *w, const struct web_route *r,
		       const struct core_cred *who, char **body)
{
	json_object *o = NULL;
	struct core_vm *vm;

	core_model_rdlock(w->cfg.model);
	vm = find(w, r);
	/* A VM its requester may not see does not exist for them. */
	if (vm && web_may(w, who, vm->owner, CORE_R_SEE) == 0)
		o = vm_json(vm, web_may(w, who, vm->owner, CORE_R_READ) == 0);
	core_model_unlock(w->cfg.model);
	if (!o)
		return not_found(r, body);
	*body = web_json_text(o);
	return 200;
}

struct totals {
	struct web *w;
	const struct core_cred *who;
	json_object *items;
	int64_t vms, running, cpus, mem, disk, rss;
	double cpu_s;
};

static int add_metric(struct core_vm *vm, void *arg)
{
	struct totals *t = arg;
	json_object *o;

	/* Usage is the owner's, as stats is in the tree. */
	if (web_may(t->w, t->who, vm->owner, CORE_R_READ) < 0)
		return 0;
	o = usage_json(vm);

	json_object_object_add(o, "name", json_object_new_string(vm->name));
	json_object_object_add(o, "namespace", json_object_new_string(vm->ns));
	json_object_object_add(o, "phase", json_object_new_string(
		core_phase_name(vm->st.phase)));
	json_object_array_add(t->items, o);
	t->vms++;
	t->running += vm->st.phase == CORE_PHASE_RUNNING;
	t->cpus += vm->spec.cpus;
	t->mem += (int64_t)vm->spec.memory;
	t->disk += (int64_t)disk_bytes(vm);
	t->rss += json_object_get_int64(json_object_object_get(o, "memoryRssBytes"));
	t->cpu_s += json_object_get_double(json_object_object_get(o, "cpuSeconds"));
	return 0;
}

static unsigned get_vm_metrics(struct web *w, const struct core_cred *who,
			       char **body)
{
	struct totals t = { .w = w, .who = who,
			    .items = json_object_new_array() };
	json_object *o = json_object_new_object(), *tot = json_object_new_object();

	core_model_rdlock(w->cfg.model);
	core_model_each(w->cfg.model, add_metric, &t);
	core_model_unlock(w->cfg.model);
	json_object_object_add(tot, "vms", json_object_new_int64(t.vms));
	json_object_object_add(tot, "running", json_object_new_int64(t.running));
	json_object_object_add(tot, "cpus", json_object_new_int64(t.cpus));
	json_object_object_add(tot, "memoryBytes", json_object_new_int64(t.mem));
	json_object_object_add(tot, "diskBytes", json_object_new_int64(t.disk));
	json_object_object_add(tot, "memoryRssBytes", json_object_new_int64(t.rss));
	json_object_object_add(tot, "cpuSeconds", json_object_new_double(t.cpu_s));
	json_object_object_add(o, "timestamp", json_object_new_int64(time(NULL)));
	json_object_object_add(o, "totals", tot);
	json_object_object_add(o, "items", t.items);
	*body = web_json_text(o);
	return 200;
}

static unsigned get_config(struct web *w, char **body)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "node", json_object_new_string(
		w->cfg.node ? w->cfg.node : ""));
	json_object_object_add(o, "mode", json_object_new_string(
		w->cfg.cluster ? "cluster" : "standalone"));
	json_object_object_add(o, "authRequired", json_object_new_boolean(
		w->cfg.token && w->cfg.token[0]));
	*body = web_json_text(o);
	return 200;
}

static int add_node(struct core_node *n, void *arg)
{
	struct listing *l = arg;
	json_object *o = json_object_new_object(), *g = json_object_new_object();
	char at[32];

	json_object_object_add(o, "name", json_object_new_string(n->name));
	json_object_object_add(o, "self", json_object_new_boolean(
		l->w->cfg.node && !strcmp(n->name, l->w->cfg.node)));
	json_object_object_add(g, "zone", json_object_new_string(n->grid.zone));
	json_object_object_add(g, "provider",
			       json_object_new_string(n->grid.provider));
	if (n->grid.intensity >= 0) {
		core_rfc3339(n->grid.at, at, sizeof(at));
		json_object_object_add(g, "intensity",
				       json_object_new_int(n->grid.intensity));
		json_object_object_add(g, "readingTime",
				       json_object_new_string(at));
	}
	json_object_object_add(o, "carbon", g);
	json_object_array_add(l->items, o);
	return 0;
}

/* Each node with its grid's intensity (the dashboard's badges). */
static unsigned get_nodes(struct web *w, const struct core_cred *who,
			  char **body)
{
	struct listing l = { w, who, json_object_new_array() };

	core_model_rdlock(w->cfg.model);
	core_model_each_node(w->cfg.model, add_node, &l);
	core_model_unlock(w->cfg.model);
	*body = web_json_text(web_json_list("NodeList", l.items));
	return 200;
}

unsigned web_api_get(struct web *w, const struct web_route *r,
		     const struct core_cred *who, char **body)
{
	switch (r->kind) {
	case WEB_R_VMS: return get_vms(w, who, body);
	case WEB_R_VM: return get_vm(w, r, who, body);
	case WEB_R_OPERATIONS:
	case WEB_R_SNAPSHOTS:
	case WEB_R_TEMPLATES: return web_objects_get(w, r, who, body);
	case WEB_R_VM_METRICS: return get_vm_metrics(w, who, body);
	case WEB_R_CONFIG: return get_config(w, body);
	case WEB_R_NODES: return get_nodes(w, who, body);
	default:
		*body = web_json_error("not found");
		return 404;
	}
}

/* Run msg on vm (NULL: create) and answer with the VM as it is after. */
static unsigned act(struct web *w, const char *vm, const struct core_ctl *msg,
		    unsigned ok, char **body)
{
	char err[CORE_ERR_MAX] = "";
	const char *name = vm ? vm : msg->arg;
	json_object *o = json_object_new_object();
	struct core_vm *v;
	int rc = w->cfg.ctl(w->cfg.arg, vm, msg, err, sizeof(err));

	if (rc < 0 && !err[0])
		snprintf(err, sizeof(err), "%s", strerror(-rc));
	core_model_record(w->cfg.model, vm, rc, err);
	if (rc < 0) {
		json_object_put(o);
		*body = web_json_error(err);
		return web_http_status(rc);
	}
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	core_model_rdlock(w->cfg.model);
	v = core_model_find(w->cfg.model, name);
	if (v)
		json_object_object_add(o, "vm", vm_json(v, true));
	core_model_unlock(w->cfg.model);
	*body = web_json_text(o);
	return ok;
}

static unsigned denied(const char *what, char **body)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "permission denied: %s", what);
	*body = web_json_error(msg);
	return 403;
}

unsigned web_api_post(struct web *w, const struct web_route *r,
		      const struct core_cred *who, const char *data,
		      size_t len, char **body)
{
	char err[CORE_ERR_MAX] = "";
	struct core_ctl msg;
	struct core_vm *vm;
	bool seen = false, mine = false;
	int rc;

	if (r->kind == WEB_R_SNAPSHOT_DELETE)
		return web_snapshot_delete(w, r, who, body);
	if (r->kind == WEB_R_VMS) {
		if (web_may(w, who, 0, CORE_R_CREATE) < 0)
			return denied("only root and the daemon's group make VMs",
				      body);
		rc = web_parse_create(data, len, &msg, err, sizeof(err));
		if (rc < 0) {
			*body = web_json_error(err);
			return 400;
		}
		msg.owner = who->uid;
		return act(w, NULL, &msg, 201, body);
	}
	core_model_rdlock(w->cfg.model);
	vm = find(w, r);
	seen = vm && web_may(w, who, vm->owner, CORE_R_SEE) == 0;
	mine = vm && web_may(w, who, vm->owner, CORE_R_CONTROL) == 0;
	core_model_unlock(w->cfg.model);
	if (!seen)
		return not_found(r, body);
	if (!mine)
		return denied("only the VM's owner and root act on it", body);
	rc = web_parse_action(data, len, &msg, err, sizeof(err));
	if (rc < 0) {
		*body = web_json_error(err);
		return web_http_status(rc);
	}
	msg.owner = who->uid;   /* a clone is its requester's */
	return act(w, r->name, &msg, 200, body);
}
