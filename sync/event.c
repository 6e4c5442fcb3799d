/* The pure parts: kinds, watch events, line splitting, merge patches,
 * names and times.  No I/O, so the unit tests and fuzzers drive them. */
#include "sync/priv.h"

#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deep enough for any Kubernetes object, shallow enough that json-c's
 * recursive free cannot exhaust the stack on hostile input. */
#define JSON_DEPTH 128
#define LINE_MAX_DEFAULT (64u * 1024 * 1024)

static const struct {
	const char *name, *plural;
	enum core_kind core;
} kinds[SYNC_KIND_COUNT] = {
	[SYNC_VM] = { "VirtualMachine", "virtualmachines", CORE_KIND_COUNT },
	[SYNC_OPERATION] = { "VMOperation", "vmoperations",
			     CORE_KIND_OPERATION },
	[SYNC_TEMPLATE] = { "VMTemplate", "vmtemplates", CORE_KIND_TEMPLATE },
	[SYNC_SNAPSHOT] = { "VMSnapshot", "vmsnapshots", CORE_KIND_SNAPSHOT },
};

const char *sync_kind_name(enum sync_kind k)
{
	return (unsigned)k < SYNC_KIND_COUNT ? kinds[k].name : "?";
}

const char *sync_kind_plural(enum sync_kind k)
{
	return (unsigned)k < SYNC_KIND_COUNT ? kinds[k].plural : "?";
}

enum core_kind sync_core_kind(enum sync_kind k)
{
	return (unsigned)k < SYNC_KIND_COUNT ? kinds[k].core : CORE_KIND_COUNT;
}

enum sync_kind sync_kind_of(enum core_kind k)
{
	if ((unsigned)k >= CORE_KIND_COUNT)
		return SYNC_KIND_COUNT;
	for (int i = 0; i < SYNC_KIND_COUNT; i++)
		if (kinds[i].core == k)
			return (enum sync_kind)i;
	return SYNC_KIND_COUNT;
}

int sync_json_parse(const char *buf, size_t len, json_object **out)
{
	struct json_tokener *tok;
	json_object *o = NULL;
	size_t end;

	*out = NULL;
	if (len > (size_t)INT32_MAX)
		return -EINVAL;
	tok = json_tokener_new_ex(JSON_DEPTH);
	if (!tok)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, buf, (int)len);
	end = json_tokener_get_parse_end(tok);
	/* One object, then only white space (json-c stops at the end of the
	 * first value and would ignore the rest).  buf is not terminated:
	 * watch lines point into curl's buffer. */
	while (end < len && buf[end] && strchr(" \t\r\n", buf[end]))
		end++;
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(o, json_type_object) || end != len) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	*out = o;
	return o ? 0 : -EINVAL;
}

const char *sync_meta_str(json_object *obj, const char *key)
{
	json_object *md, *v;

	if (!json_object_object_get_ex(obj, "metadata", &md) ||
	    !json_object_object_get_ex(md, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int sync_status_code(json_object *status)
{
	json_object *v;

	if (!json_object_object_get_ex(status, "code", &v) ||
	    !json_object_is_type(v, json_type_int))
		return 0;
	return json_object_get_int(v);
}

static int decode_type(const char *t, enum sync_event_type *type)
{
	static const char *const names[] = {
		[SYNC_EV_ADDED] = "ADDED",
		[SYNC_EV_MODIFIED] = "MODIFIED",
		[SYNC_EV_DELETED] = "DELETED",
		[SYNC_EV_BOOKMARK] = "BOOKMARK",
		[SYNC_EV_ERROR] = "ERROR",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(t, names[i]) == 0) {
			*type = (enum sync_event_type)i;
			return 0;
		}
	}
	return -EINVAL;
}

int sync_event_decode(const char *line, size_t len, enum sync_event_type *type,
		      json_object **obj, char *err, size_t errlen)
{
	json_object *ev = NULL, *t, *o;
	const char *rv, *name;
	char q[80];
	int r = -EINVAL;

	*obj = NULL;
	if (sync_json_parse(line, len, &ev) < 0) {
		core_quote(q, sizeof(q), line, len);
		snprintf(err, errlen, "watch event: not a JSON object: %s", q);
		goto out;
	}
	if (!json_object_object_get_ex(ev, "type", &t) ||
	    !json_object_is_type(t, json_type_string)) {
		snprintf(err, errlen, "watch event: no type");
		goto out;
	}
	if (decode_type(json_object_get_string(t), type) < 0) {
		core_quote(q, sizeof(q), json_object_get_string(t),
			   (size_t)json_object_get_string_len(t));
		snprintf(err, errlen, "watch event: unknown type %s", q);
		goto out;
	}
	if (!json_object_object_get_ex(ev, "object", &o) ||
	    !json_object_is_type(o, json_type_object)) {
		snprintf(err, errlen, "watch event: no object");
		goto out;
	}
	rv = sync_meta_str(o, "resourceVersion");
	name = sync_meta_str(o, "name");
	/* Every event but ERROR moves the resourceVersion on; the object
	 * events also need a name to be applied at all. */
	if (*type != SYNC_EV_ERROR && (!rv || !*rv)) {
		snprintf(err, errlen, "watch event: no metadata.resourceVersion");
		goto out;
	}
	if (*type <= SYNC_EV_DELETED && (!name || !*name)) {
		snprintf(err, errlen, "watch event: no metadata.name");
		goto out;
	}
	*obj = json_object_get(o);
	r = 0;
out:
	json_object_put(ev);
	return r;
}

/* ---- lines ------------------------------------------------------------- */

static int lines_append(struct sync_lines *l, const char *p, size_t n)
{
	size_t max = l->max ? l->max : LINE_MAX_DEFAULT, cap;
	char *nb;

	if (l->len + n > max)
		return -E2BIG;
	if (l->len + n > l->cap) {
		cap = l->cap ? l->cap : 4096;
		while (cap < l->len + n)
			cap *= 2;
		nb = realloc(l->buf, cap);
		if (!nb)
			return -ENOMEM;
		l->buf = nb;
		l->cap = cap;
	}
	memcpy(l->buf + l->len, p, n);
	l->len += n;
	return 0;
}

static int emit(const char *p, size_t n, sync_line_fn fn, void *arg)
{
	if (n > 0 && p[n - 1] == '\r')
		n--;
	return fn(arg, p, n);
}

int sync_lines_feed(struct sync_lines *l, const char *p, size_t n,
		    sync_line_fn fn, void *arg)
{
	const char *nl;
	size_t k;
	int r;

	while (n > 0) {
		nl = memchr(p, '\n', n);
		if (!nl)
			return lines_append(l, p, n);
		k = (size_t)(nl - p);
		if (l->len == 0) {
			/* The common case: a whole line in this chunk. */
			r = emit(p, k, fn, arg);
		} else {
			r = lines_append(l, p, k);
			if (r == 0) {
				size_t m = l->len;

				l->len = 0;
				r = emit(l->buf, m, fn, arg);
			}
		}
		if (r)
			return r;
		p += k + 1;
		n -= k + 1;
	}
	return 0;
}

void sync_lines_reset(struct sync_lines *l)
{
	l->len = 0;
}

void sync_lines_free(struct sync_lines *l)
{
	free(l->buf);
	l->buf = NULL;
	l->len = l->cap = 0;
}

/* ---- merge patches (RFC 7386) ----------------------------------------- */

static json_object *copy(json_object *o)
{
	json_object *c = NULL;

	if (!o || json_object_deep_copy(o, &c, NULL) < 0)
		return NULL;
	return c;
}

json_object *sync_merge_compose(json_object *older, json_object *newer)
{
	json_object *res, *have;

	/* A non-object replaces whatever was patched before; an object over
	 * a non-object replaces too (the inexact case: applying both in turn
	 * would first wipe the target's value under this key). */
	if (!json_object_is_type(newer, json_type_object) ||
	    !json_object_is_type(older, json_type_object))
		return copy(newer);
	res = copy(older);
	if (!res)
		return NULL;
	json_object_object_foreach(newer, k, v) {
		if (json_object_is_type(v, json_type_object) &&
		    json_object_object_get_ex(res, k, &have))
			json_object_object_add(res, k,
					       sync_merge_compose(have, v));
		else
			json_object_object_add(res, k, copy(v));
	}
	return res;
}

json_object *sync_merge_apply(json_object *target, json_object *patch)
{
	json_object *res, *have;

	if (!json_object_is_type(patch, json_type_object))
		return copy(patch);
	res = json_object_is_type(target, json_type_object) ? copy(target) :
							      json_object_new_object();
	if (!res)
		return NULL;
	json_object_object_foreach(patch, k, v) {
		if (!v) {
			json_object_object_del(res, k);
			continue;
		}
		have = NULL;
		json_object_object_get_ex(res, k, &have);
		json_object_object_add(res, k, sync_merge_apply(have, v));
	}
	return res;
}

/* ---- names and times --------------------------------------------------- */

static bool alnum_lower(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool sync_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > SYNC_NAME_MAX || !alnum_lower(name[0]) ||
	    !alnum_lower(name[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!alnum_lower(name[i]) && name[i] != '-' && name[i] != '.')
			return false;
	return true;
}

void sync_micro_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char sec[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06ldZ", sec, ts.tv_nsec / 1000);
}

int sync_parse_time(const char *s, double *out)
{
	struct tm tm = { 0 };
	int n = 0, oh = 0, om = 0;
	double frac = 0, scale = 0.1;
	char sign;
	time_t t;

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year,
			 &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
			 &tm.tm_sec, &n) != 6 || n != 19)
		return -EINVAL;
	s += n;
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10)
			frac += (*s - '0') * scale;
	}
	sign = *s;
	if (sign == 'Z' || sign == 'z') {
		s++;
	} else if (sign == '+' || sign == '-') {
		if (sscanf(s + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5)
			return -EINVAL;
		s += 6;
	} else {
		return -EINVAL;
	}
	if (*s || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return -EINVAL;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = timegm(&tm);
	*out = (double)t + frac - (sign == '-' ? -1 : sign == '+' ? 1 : 0) *
				  (oh * 3600.0 + om * 60.0);
	return 0;
}
