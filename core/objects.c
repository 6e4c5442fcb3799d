/* Operations, snapshots and templates in the model.  They are kept as
 * whole API objects, since the daemon only adds status to what kubectl
 * or a ctl write made; the tree shows their status flat, as VMs' is. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model_priv.h"

static const char *const kind_names[CORE_KIND_COUNT] = {
	[CORE_KIND_OPERATION] = "VMOperation",
	[CORE_KIND_SNAPSHOT] = "VMSnapshot",
	[CORE_KIND_TEMPLATE] = "VMTemplate",
};
static const char *const kind_dirs[CORE_KIND_COUNT] = {
	[CORE_KIND_OPERATION] = "operations",
	[CORE_KIND_SNAPSHOT] = "snapshots",
	[CORE_KIND_TEMPLATE] = "templates",
};

const char *core_kind_name(enum core_kind k)
{
	return k < CORE_KIND_COUNT ? kind_names[k] : "?";
}

const char *core_kind_dir(enum core_kind k)
{
	return k < CORE_KIND_COUNT ? kind_dirs[k] : "?";
}

json_object *core_json_path(json_object *root, const char *path)
{
	char key[128];
	const char *p = path, *dot;
	size_t n;

	while (root && *p) {
		dot = strchr(p, '.');
		n = dot ? (size_t)(dot - p) : strlen(p);
		if (n >= sizeof(key) || !json_object_is_type(root, json_type_object))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		if (!json_object_object_get_ex(root, key, &root))
			return NULL;
		p += n + (dot ? 1 : 0);
	}
	return root;
}

const char *core_obj_str(const struct core_obj *o, const char *path)
{
	json_object *v = core_json_path(o->obj, path);

	return json_object_is_type(v, json_type_string) ?
		       json_object_get_string(v) : NULL;
}

int64_t core_obj_int(const struct core_obj *o, const char *path, int64_t def)
{
	json_object *v = core_json_path(o->obj, path);

	return json_object_is_type(v, json_type_int) ? json_object_get_int64(v)
						     : def;
}

bool core_obj_bool(const struct core_obj *o, const char *path, bool def)
{
	json_object *v = core_json_path(o->obj, path);

	return json_object_is_type(v, json_type_boolean) ?
		       json_object_get_boolean(v) : def;
}

/* ---- rendering ------------------------------------------------------ */

struct buf {
	char *b;
	size_t len, cap;
	bool oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
	char *nb;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;

		nb = realloc(b->b, cap);
		if (!nb) {
			b->oom = true;
			return;
		}
		b->b = nb;
		b->cap = cap;
	}
	memcpy(b->b + b->len, s, n);
	b->len += n;
	b->b[b->len] = '\0';
}

/* "key value\n"; control bytes in value become spaces, empty is "-". */
static void line(struct buf *b, const char *key, const char *val)
{
	size_t start;

	put(b, key, strlen(key));
	put(b, " ", 1);
	if (!val || !*val)
		val = "-";
	start = b->len;
	put(b, val, strlen(val));
	for (size_t i = start; !b->oom && i < b->len; i++)
		if ((unsigned char)b->b[i] < 0x20 || b->b[i] == 0x7f)
			b->b[i] = ' ';
	put(b, "\n", 1);
}

static void flatten(struct buf *b, const char *prefix, json_object *v);

/* Conditions by type, as VMs show theirs. */
static void conditions(struct buf *b, json_object *arr)
{
	static const char *const sub[] = { "reason", "message",
					   "lastTransitionTime" };
	static const char *const out[] = { "reason", "message", "since" };
	char key[256];
	json_object *c, *t, *f;

	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		c = json_object_array_get_idx(arr, i);
		if (!json_object_object_get_ex(c, "type", &t) ||
		    !json_object_is_type(t, json_type_string))
			continue;
		snprintf(key, sizeof(key), "condition.%s",
			 json_object_get_string(t));
		f = NULL;
		json_object_object_get_ex(c, "status", &f);
		line(b, key, !json_object_is_type(f, json_type_string) ? "-" :
			     strcmp(json_object_get_string(f), "True") ? "false" :
			     "true");
		for (size_t k = 0; k < 3; k++) {
			snprintf(key, sizeof(key), "condition.%s.%s",
				 json_object_get_string(t), out[k]);
			f = NULL;
			json_object_object_get_ex(c, sub[k], &f);
			line(b, key, f ? json_object_get_string(f) : NULL);
		}
	}
}

/* Arrays of scalars are one line, space separated. */
static void array(struct buf *b, const char *prefix, json_object *arr)
{
	struct buf v = { 0 };

	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *e = json_object_array_get_idx(arr, i);
		const char *s = e ? json_object_get_string(e) : "";

		if (json_object_is_type(e, json_type_object) ||
		    json_object_is_type(e, json_type_array)) {
			char key[256];

			snprintf(key, sizeof(key), "%s.%zu", prefix, i);
			flatten(b, key, e);
			continue;
		}
		if (v.len)
			put(&v, " ", 1);
		put(&v, s, strlen(s));
	}
	if (v.len || !json_object_array_length(arr))
		line(b, prefix, v.b);
	free(v.b);
}

static void flatten(struct buf *b, const char *prefix, json_object *v)
{
	char key[256];

	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, k, child) {
			if (!*prefix && !strcmp(k, "phase"))
				continue;
			snprintf(key, sizeof(key), "%s%s%s", prefix,
				 *prefix ? "." : "", k);
			if (!*prefix && !strcmp(k, "conditions") &&
			    json_object_is_type(child, json_type_array))
				conditions(b, child);
			else
				flatten(b, key, child);
		}
	} else if (json_object_is_type(v, json_type_array)) {
		array(b, prefix, v);
	} else {
		line(b, prefix, v ? json_object_get_string(v) : NULL);
	}
}

char *core_obj_render_status(json_object *status, size_t *len)
{
	struct buf b = { 0 };
	json_object *ph = NULL;

	json_object_object_get_ex(status, "phase", &ph);
	line(&b, "phase", ph ? json_object_get_string(ph) : "Pending");
	if (json_object_is_type(status, json_type_object))
		flatten(&b, "", status);
	if (b.oom) {
		free(b.b);
		return NULL;
	}
	*len = b.len;
	return b.b;
}

/* ---- the set ---------------------------------------------------------- */

static int free_slot(struct core_model *m)
{
	size_t old = m->nobjs, n = old ? old * 2 : 16;
	struct core_obj **v;

	for (size_t i = 0; i < old; i++)
		if (!m->objs[i])
			return (int)i;
	v = realloc(m->objs, n * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memset(v + old, 0, (n - old) * sizeof(*v));
	m->objs = v;
	m->nobjs = n;
	return (int)old;
}

struct core_obj *core_model_obj_find(struct core_model *m, enum core_kind kind,
				     const char *name)
{
	for (size_t i = 0; i < m->nobjs; i++)
		if (m->objs[i] && m->objs[i]->kind == kind &&
		    !strcmp(m->objs[i]->name, name))
			return m->objs[i];
	return NULL;
}

struct core_obj *core_model_obj_slot(struct core_model *m, int slot)
{
	return slot >= 0 && (size_t)slot < m->nobjs ? m->objs[slot] : NULL;
}

static int by_name(const void *a, const void *b)
{
	const struct core_obj *x = *(struct core_obj *const *)a;
	const struct core_obj *y = *(struct core_obj *const *)b;

	return strcmp(x->name, y->name);
}

int core_model_obj_each(struct core_model *m, enum core_kind kind,
			int (*fn)(struct core_obj *o, void *arg), void *arg)
{
	struct core_obj **v;
	size_t n = 0;
	int r = 0;

	v = malloc((m->nobjs ? m->nobjs : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < m->nobjs; i++)
		if (m->objs[i] && m->objs[i]->kind == kind)
			v[n++] = m->objs[i];
	qsort(v, n, sizeof(*v), by_name);
	for (size_t i = 0; i < n && !r; i++)
		r = fn(v[i], arg);
	free(v);
	return r;
}

static void render(struct core_model *m, struct core_obj *o)
{
	json_object *st = core_json_path(o->obj, "status");
	json_object *spec = core_json_path(o->obj, "spec");
	char *txt, *yaml = NULL;
	size_t len = 0, ylen = 0;

	txt = core_obj_render_status(st, &len);
	if (txt) {
		free(o->txt_status);
		o->txt_status = txt;
		o->len_status = len;
	}
	if (spec && core_yaml_emit(spec, &yaml, &ylen) == 0) {
		free(o->txt_spec);
		o->txt_spec = yaml;
		o->len_spec = ylen;
	}
	o->version++;
	core_model_notify_tree(m, CORE_CHG_OBJECTS);
}

static int check_obj(enum core_kind kind, json_object *obj, const char **name,
		     const char **vm, char *err, size_t errlen)
{
	json_object *n = core_json_path(obj, "metadata.name");
	json_object *v = core_json_path(obj, "spec.vmRef.name");

	*name = json_object_is_type(n, json_type_string) ?
			json_object_get_string(n) : NULL;
	*vm = json_object_is_type(v, json_type_string) ?
		      json_object_get_string(v) : "";
	if (!*name) {
		snprintf(err, errlen, "%s: metadata.name is missing",
			 core_kind_name(kind));
		return -EINVAL;
	}
	if (core_name_check(*name, err, errlen) < 0)
		return -EINVAL;
	if (kind != CORE_KIND_TEMPLATE &&
	    (!**vm || core_name_check(*vm, err, errlen) < 0)) {
		snprintf(err, errlen, "%s %s: spec.vmRef.name is missing or "
			 "not a valid name", core_kind_name(kind), *name);
		return -EINVAL;
	}
	return 0;
}

int core_model_obj_put(struct core_model *m, enum core_kind kind,
		       json_object *obj, struct core_obj **out, char *err,
		       size_t errlen)
{
	struct core_obj *o;
	const char *name, *vm;
	int r, slot;

	if (kind >= CORE_KIND_COUNT || !json_object_is_type(obj, json_type_object))
		return -EINVAL;
	r = check_obj(kind, obj, &name, &vm, err, errlen);
	if (r < 0)
		return r;
	o = core_model_obj_find(m, kind, name);
	if (!o) {
		slot = free_slot(m);
		if (slot < 0)
			return slot;
		o = calloc(1, sizeof(*o) + m->obj_priv);
		if (!o)
			return -ENOMEM;
		if (m->obj_priv)
			o->priv = o + 1;
		o->kind = kind;
		o->slot = slot;
		snprintf(o->name, sizeof(o->name), "%s", name);
		m->objs[slot] = o;
	}
	snprintf(o->vm, sizeof(o->vm), "%s", vm);
	if (o->obj != obj)
		json_object_put(o->obj);
	o->obj = obj;
	render(m, o);
	if (out)
		*out = o;
	return 0;
}

void core_model_obj_status_set(struct core_model *m, struct core_obj *o,
			       const char *key, json_object *val)
{
	json_object *st = core_json_path(o->obj, "status");

	if (!json_object_is_type(st, json_type_object)) {
		st = json_object_new_object();
		json_object_object_add(o->obj, "status", st);
	}
	json_object_object_add(st, key, val);
	render(m, o);
}

static void free_obj(struct core_obj *o)
{
	json_object_put(o->obj);
	free(o->txt_status);
	free(o->txt_spec);
	free(o);
}

void core_model_obj_remove(struct core_model *m, struct core_obj *o)
{
	m->objs[o->slot] = NULL;
	free_obj(o);
	core_model_notify_tree(m, CORE_CHG_OBJECTS);
}

void core_objs_free(struct core_model *m)
{
	for (size_t i = 0; i < m->nobjs; i++)
		if (m->objs[i])
			free_obj(m->objs[i]);
	free(m->objs);
}
