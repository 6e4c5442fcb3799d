/* Node leases: coordination.k8s.io/v1 Lease "hypersdk-node-<node>" in the
 * watched namespace, labelled hypersdk.io/node=true, renewed every third
 * of its duration (as the kubelet does with its node lease), so a node
 * that misses two renewals in a row is still alive. */
#include "sync/priv.h"

#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEASES "/apis/coordination.k8s.io/v1/namespaces/%s/leases"

static json_object *lease_spec(struct sync *s, const char *now, bool create)
{
	json_object *spec = json_object_new_object();

	json_object_object_add(spec, "holderIdentity",
			       json_object_new_string(s->node));
	json_object_object_add(spec, "leaseDurationSeconds",
			       json_object_new_int(s->lease_seconds));
	json_object_object_add(spec, "renewTime", json_object_new_string(now));
	if (create)
		json_object_object_add(spec, "acquireTime",
				       json_object_new_string(now));
	return spec;
}

/* What sync_lease_set published (mu held): null removes a key. */
static json_object *annotations(struct sync *s)
{
	json_object *a = json_object_new_object();

	for (int i = 0; i < s->nann; i++)
		json_object_object_add(a, s->ann[i].key, s->ann[i].val ?
				       json_object_new_string(s->ann[i].val) :
				       NULL);
	return a;
}

static json_object *lease_meta(struct sync *s, bool create)
{
	json_object *md = json_object_new_object();
	json_object *labels = json_object_new_object();
	char name[SYNC_NAME_MAX + 1];

	json_object_object_add(labels, CORE_NODE_LABEL,
			       json_object_new_string("true"));
	json_object_object_add(md, "labels", labels);
	pthread_mutex_lock(&s->mu);
	if (s->nann)
		json_object_object_add(md, "annotations", annotations(s));
	pthread_mutex_unlock(&s->mu);
	if (create) {
		snprintf(name, sizeof(name), SYNC_LEASE_PREFIX "%s", s->node);
		json_object_object_add(md, "name", json_object_new_string(name));
		json_object_object_add(md, "namespace",
				       json_object_new_string(s->ns));
	}
	return md;
}

static int renew(struct sync *s, struct sync_http *h, char *err,
		 size_t errlen)
{
	char coll[512], path[1024], now[40];
	json_object *body = NULL;
	int r;

	snprintf(coll, sizeof(coll), LEASES, s->ns);
	snprintf(path, sizeof(path), "%s/" SYNC_LEASE_PREFIX "%s", coll,
		 s->node);
	for (int tries = 0; tries < 2; tries++) {
		sync_micro_time(now, sizeof(now));
		body = json_object_new_object();
		json_object_object_add(body, "metadata", lease_meta(s, false));
		json_object_object_add(body, "spec", lease_spec(s, now, false));
		r = sync_request_on(s, h, "PATCH", path, body,
				    SYNC_MERGE_PATCH, NULL, err, errlen);
		json_object_put(body);
		if (r != -ENOENT)
			break;
		body = json_object_new_object();
		json_object_object_add(body, "apiVersion",
				       json_object_new_string("coordination.k8s.io/v1"));
		json_object_object_add(body, "kind",
				       json_object_new_string("Lease"));
		json_object_object_add(body, "metadata", lease_meta(s, true));
		json_object_object_add(body, "spec", lease_spec(s, now, true));
		r = sync_request_on(s, h, "POST", coll, body, SYNC_JSON, NULL,
				    err, errlen);
		json_object_put(body);
		/* Created by our previous incarnation meanwhile: patch it. */
		if (r != -EEXIST)
			break;
	}
	return r;
}

static void renewed(struct sync *s)
{
	pthread_mutex_lock(&s->mu);
	clock_gettime(CLOCK_MONOTONIC, &s->renewed);
	pthread_mutex_unlock(&s->mu);
}

void *sync_lease_main(void *arg)
{
	struct sync *s = arg;
	long period = s->lease_seconds * 1000L / 3, wait_ms;
	struct sync_backoff b = { 0 };
	char err[CORE_ERR_MAX], last[CORE_ERR_MAX] = "";
	struct sync_http *h = NULL;
	unsigned seen = 0;
	int r;

	if (sync_http_new(&s->creds, &s->stop, &h, err, sizeof(err)) < 0) {
		sync_log("lease: %s", err);
		return NULL;
	}
	/* A renewal stuck longer than the period is worth less than the
	 * next one on a fresh connection. */
	sync_http_timeout(h, period < 1000 ? 1000 : period > 30000 ? 30000 :
			  period);
	while (!sync_stopping(s)) {
		r = renew(s, h, err, sizeof(err));
		if (r == 0) {
			renewed(s);
			if (last[0])
				sync_log("lease %s%s: renewed again",
					 SYNC_LEASE_PREFIX, s->node);
			last[0] = '\0';
			sync_backoff_reset(&b);
			wait_ms = period;
		} else {
			if (r != -ECANCELED && strcmp(err, last) != 0)
				sync_log("lease %s%s: %s", SYNC_LEASE_PREFIX,
					 s->node, err);
			snprintf(last, sizeof(last), "%s", err);
			/* Retry sooner than the period, never faster. */
			wait_ms = sync_backoff_next(&b);
			if (wait_ms > period)
				wait_ms = period;
		}
		/* Or sooner, when sync_lease_set asks for a renewal now. */
		sync_wait_for(s, &s->cv, wait_ms, &seen, &s->lease_kick);
	}
	sync_http_free(h);
	return NULL;
}

static bool key_ok(const char *key)
{
	size_t n = key ? strlen(key) : 0;

	return n > sizeof(CORE_API_GROUP) && n < 64 &&
	       !strncmp(key, CORE_API_GROUP "/", sizeof(CORE_API_GROUP)) &&
	       strspn(key + sizeof(CORE_API_GROUP),
		      "abcdefghijklmnopqrstuvwxyz0123456789-.") ==
	       n - sizeof(CORE_API_GROUP);
}

int sync_lease_set(struct sync *s, const char *key, const char *value)
{
	char *v = value ? strdup(value) : NULL;
	int i, r = 0;

	if (!key_ok(key) || (value && strlen(value) > 4096)) {
		free(v);
		return -EINVAL;
	}
	if (value && !v)
		return -ENOMEM;
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->nann && strcmp(s->ann[i].key, key); i++)
		;
	if (i == s->nann && i == (int)(sizeof(s->ann) / sizeof(s->ann[0])))
		r = -ENOSPC;
	if (r == 0) {
		if (i == s->nann)
			snprintf(s->ann[s->nann++].key, sizeof(s->ann[0].key),
				 "%s", key);
		free(s->ann[i].val);
		s->ann[i].val = v;
		v = NULL;
		s->lease_kick++;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	free(v);
	return r;
}

int sync_lease_annotate(struct sync *s, const char *node, const char *key,
			const char *value, char *err, size_t errlen)
{
	json_object *body, *md, *a;
	char path[1024];
	int r;

	if (!key_ok(key) || !sync_name_ok(node)) {
		snprintf(err, errlen, "bad node or annotation");
		return -EINVAL;
	}
	body = json_object_new_object();
	md = json_object_new_object();
	a = json_object_new_object();
	json_object_object_add(a, key, value ? json_object_new_string(value) :
			       NULL);
	json_object_object_add(md, "annotations", a);
	json_object_object_add(body, "metadata", md);
	snprintf(path, sizeof(path), LEASES "/" SYNC_LEASE_PREFIX "%s", s->ns,
		 node);
	r = sync_request(s, "PATCH", path, body, SYNC_MERGE_PATCH, NULL, err,
			 errlen);
	json_object_put(body);
	return r;
}

double sync_lease_age(struct sync *s)
{
	struct timespec now, t;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&s->mu);
	t = s->renewed;
	pthread_mutex_unlock(&s->mu);
	return (double)(now.tv_sec - t.tv_sec) +
	       (now.tv_nsec - t.tv_nsec) / 1e9;
}

int sync_lease_seconds(struct sync *s)
{
	return s->lease_seconds;
}

static void one_lease(json_object *it, double now,
		      void (*fn)(void *, const struct sync_node *), void *arg)
{
	struct sync_node n = { 0 };
	json_object *spec, *v, *md;
	const char *renew = "";

	if (!json_object_object_get_ex(it, "spec", &spec) ||
	    !json_object_object_get_ex(spec, "holderIdentity", &v) ||
	    !json_object_is_type(v, json_type_string))
		return;
	n.name = json_object_get_string(v);
	if (json_object_object_get_ex(spec, "renewTime", &v) &&
	    json_object_is_type(v, json_type_string))
		renew = json_object_get_string(v);
	if (json_object_object_get_ex(spec, "leaseDurationSeconds", &v) &&
	    json_object_is_type(v, json_type_int))
		n.duration_s = json_object_get_int(v);
	if (sync_parse_time(renew, &n.renew) < 0)
		n.renew = 0;
	n.alive = n.renew > 0 && n.duration_s > 0 &&
		  now < n.renew + n.duration_s;
	if (json_object_object_get_ex(it, "metadata", &md) &&
	    json_object_object_get_ex(md, "annotations", &v) &&
	    json_object_is_type(v, json_type_object))
		n.annotations = v;
	fn(arg, &n);
}

int sync_nodes(struct sync *s, void (*fn)(void *arg, const struct sync_node *n),
	       void *arg, char *err, size_t errlen)
{
	char path[512];
	json_object *list = NULL, *items;
	struct timespec ts;
	size_t n;
	int r;

	/* CORE_NODE_LABEL=true, its '/' and '=' escaped for the query. */
	snprintf(path, sizeof(path), LEASES "?labelSelector=%s%%3Dtrue",
		 s->ns, CORE_API_GROUP "%2Fnode");
	r = sync_request(s, "GET", path, NULL, NULL, &list, err, errlen);
	if (r == SYNC_UNREACHABLE) {
		char e[CORE_ERR_MAX];

		snprintf(e, sizeof(e), "%s", err);
		snprintf(err, errlen, "the API server at %s is unreachable: "
			 "%s", s->base, e);
	}
	if (r < 0)
		goto out;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (!json_object_object_get_ex(list, "items", &items) ||
	    !json_object_is_type(items, json_type_array)) {
		snprintf(err, errlen, "the lease list has no items");
		r = -EIO;
		goto out;
	}
	n = json_object_array_length(items);
	for (size_t i = 0; i < n; i++)
		one_lease(json_object_array_get_idx(items, i),
			  ts.tv_sec + ts.tv_nsec / 1e9, fn, arg);
out:
	json_object_put(list);
	return r;
}

int sync_node_object(struct sync *s, const char *name,
		     struct sync_node_object *out, char *err, size_t errlen)
{
	json_object *o = NULL, *v;
	char path[512];
	int r;

	memset(out, 0, sizeof(*out));
	if (!sync_name_ok(name)) {
		snprintf(err, errlen, "bad node name");
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "/api/v1/nodes/%s", name);
	r = sync_request(s, "GET", path, NULL, NULL, &o, err, errlen);
	if (r < 0)
		return r;
	v = core_json_path(o, "spec.unschedulable");
	out->unschedulable = v && json_object_get_boolean(v);
	if (json_object_object_get_ex(o, "metadata", &v) &&
	    json_object_object_get_ex(v, "annotations", &v) &&
	    json_object_object_get_ex(v, CORE_API_GROUP "/drain", &v) &&
	    json_object_is_type(v, json_type_string))
		snprintf(out->drain, sizeof(out->drain), "%s",
			 json_object_get_string(v));
	json_object_put(o);
	return 0;
}
