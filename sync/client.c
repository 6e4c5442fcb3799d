/* The client: opening (reachability and CRD checks), the handle pool,
 * online/offline transitions, and the calls of sync.h that are one
 * request each (patch, create, delete, get, claim). */
#include "sync/priv.h"

#include "core/core.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Status merge patches carry no resourceVersion, so a 409 means the
 * server lost an internal race; a few quick retries settle it. */
#define CONFLICT_TRIES 4

void sync_log(const char *fmt, ...)
{
	char line[CORE_ERR_MAX + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write, so lines of different threads do not interleave. */
	fprintf(stderr, "hypersdk: sync: %s\n", line);
}

long sync_backoff_next(struct sync_backoff *b)
{
	long j;

	if (!b->seed)
		b->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)b ^
			  ((unsigned)getpid() << 16);
	b->d = b->d < 100 ? 100 : b->d * 2;
	if (b->d > 10000)
		b->d = 10000;
	j = b->d / 4;
	return b->d - (long)((unsigned long)rand_r(&b->seed) %
			     (unsigned long)(j + 1));
}

void sync_backoff_reset(struct sync_backoff *b)
{
	b->d = 0;
}

bool sync_stopping(struct sync *s)
{
	return __atomic_load_n(&s->stop, __ATOMIC_ACQUIRE) != 0;
}

bool sync_wait_for(struct sync *s, pthread_cond_t *cv, long ms, unsigned *seen,
		   const unsigned *counter)
{
	struct timespec dl;
	bool stopping;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	while (!s->stop && !(seen && *seen != *counter))
		if (pthread_cond_timedwait(cv, &s->mu, &dl) == ETIMEDOUT)
			break;
	if (seen)
		*seen = *counter;
	stopping = s->stop;
	pthread_mutex_unlock(&s->mu);
	return stopping;
}

bool sync_wait(struct sync *s, pthread_cond_t *cv, long ms, unsigned *seen)
{
	return sync_wait_for(s, cv, ms, seen, &s->kick);
}

void sync_kick(struct sync *s)
{
	pthread_mutex_lock(&s->mu);
	s->kick++;
	pthread_cond_broadcast(&s->push_cv);
	pthread_mutex_unlock(&s->mu);
}

/* ---- online ------------------------------------------------------------ */

/* Tell h.online about the latest state, in order, never twice the same,
 * and without deadlock when the callback itself calls into sync: whoever
 * holds online_mu delivers; the others just leave their state behind. */
static void deliver_online(struct sync *s)
{
	int cur;

	for (;;) {
		if (pthread_mutex_trylock(&s->online_mu) != 0)
			return;
		while ((cur = __atomic_load_n(&s->online, __ATOMIC_ACQUIRE)) !=
		       s->told) {
			__atomic_store_n(&s->told, cur, __ATOMIC_RELEASE);
			if (s->h.online)
				s->h.online(s->arg, cur != 0);
		}
		pthread_mutex_unlock(&s->online_mu);
		/* Changed after our last look, by a thread that found the
		 * lock taken: deliver it for that thread. */
		if (__atomic_load_n(&s->online, __ATOMIC_ACQUIRE) ==
		    __atomic_load_n(&s->told, __ATOMIC_ACQUIRE))
			return;
	}
}

bool sync_online(struct sync *s)
{
	return __atomic_load_n(&s->online, __ATOMIC_ACQUIRE) != 0;
}

void sync_note(struct sync *s, bool up)
{
	int was = __atomic_exchange_n(&s->online, up ? 1 : 0,
				      __ATOMIC_ACQ_REL);

	if (was == (up ? 1 : 0))
		return;
	sync_log("the API server at %s is %s", s->base,
		 up ? "reachable again" : "unreachable");
	/* Back online: the outbox need not wait for its backoff. */
	if (up)
		sync_kick(s);
	deliver_online(s);
}

/* ---- requests ---------------------------------------------------------- */

int sync_http_take(struct sync *s, struct sync_http **out, char *err,
		   size_t errlen)
{
	pthread_mutex_lock(&s->mu);
	*out = s->npool ? s->pool[--s->npool] : NULL;
	pthread_mutex_unlock(&s->mu);
	if (*out)
		return 0;
	return sync_http_new(&s->creds, &s->stop, out, err, errlen);
}

void sync_http_give(struct sync *s, struct sync_http *h)
{
	pthread_mutex_lock(&s->mu);
	if (s->npool < sizeof(s->pool) / sizeof(s->pool[0])) {
		s->pool[s->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&s->mu);
	sync_http_free(h);
}

/* Namespaces are DNS labels: a dot would pass sync_name_ok. */
static bool ns_ok(const char *ns)
{
	return sync_name_ok(ns) && !strchr(ns, '.');
}

static int kind_path(const char *ns, enum sync_kind k, const char *name,
		     bool status, char *buf, size_t len)
{
	int n;

	if ((unsigned)k >= SYNC_KIND_COUNT || (name && !sync_name_ok(name)))
		return -EINVAL;
	n = snprintf(buf, len, SYNC_API_PATH "/namespaces/%s/%s%s%s%s",
		     ns, sync_kind_plural(k), name ? "/" : "",
		     name ? name : "", status ? "/status" : "");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int sync_path(const struct sync *s, enum sync_kind k, const char *name,
	      bool status, char *buf, size_t len)
{
	return kind_path(s->ns, k, name, status, buf, len);
}

static int parse_answer(const struct sync_resp *rs, json_object **out,
			char *err, size_t errlen)
{
	if (!out)
		return 0;
	if (sync_json_parse(rs->body ? rs->body : "", rs->len, out) < 0) {
		snprintf(err, errlen, "the API server's answer is not a JSON "
			 "object");
		return -EIO;
	}
	return 0;
}

int sync_request_on(struct sync *s, struct sync_http *h, const char *method,
		    const char *path, json_object *body, const char *ctype,
		    json_object **out, char *err, size_t errlen)
{
	struct sync_resp rs = { 0 };
	const char *txt = NULL;
	char *url = NULL;
	int r;

	if (out)
		*out = NULL;
	if (asprintf(&url, "%s%s", s->base, path) < 0) {
		url = NULL;
		r = -ENOMEM;
		goto out;
	}
	if (body && !(txt = json_object_to_json_string_ext(body,
			JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE))) {
		r = -ENOMEM;
		goto out;
	}
	r = sync_http_do(h, method, url, txt, ctype, &rs, err, errlen);
	if (r == 0)
		r = sync_http_errno(&rs, err, errlen);
	/* 429 and 502-504 are answers, but say "not now" all the same. */
	if (r == SYNC_UNREACHABLE)
		sync_note(s, false);
	else if (rs.code != 0)
		sync_note(s, true);
	if (r == 0)
		r = parse_answer(&rs, out, err, errlen);
out:
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	sync_resp_free(&rs);
	free(url);
	return r;
}

int sync_request(struct sync *s, const char *method, const char *path,
		 json_object *body, const char *ctype, json_object **out,
		 char *err, size_t errlen)
{
	struct sync_http *h = NULL;
	int r;

	if (out)
		*out = NULL;
	r = sync_http_take(s, &h, err, errlen);
	if (r < 0)
		return r;
	r = sync_request_on(s, h, method, path, body, ctype, out, err, errlen);
	sync_http_give(s, h);
	return r;
}

/* ---- open and close ---------------------------------------------------- */

static int check_server(struct sync *s, char *err, size_t errlen)
{
	char e[CORE_ERR_MAX] = "";
	json_object *v = NULL;
	int r;

	r = sync_request(s, "GET", "/version", NULL, NULL, &v, e, sizeof(e));
	json_object_put(v);
	if (r == SYNC_UNREACHABLE)
		snprintf(err, errlen, "the API server at %s does not answer: "
			 "%s", s->base, e);
	else if (r < 0)
		snprintf(err, errlen, "the API server at %s: %s", s->base, e);
	return r;
}

static bool has_resource(json_object *list, const char *plural)
{
	json_object *res, *e, *n;
	size_t len;

	if (!json_object_object_get_ex(list, "resources", &res) ||
	    !json_object_is_type(res, json_type_array))
		return false;
	len = json_object_array_length(res);
	for (size_t i = 0; i < len; i++) {
		e = json_object_array_get_idx(res, i);
		if (json_object_object_get_ex(e, "name", &n) &&
		    strcmp(json_object_get_string(n), plural) == 0)
			return true;
	}
	return false;
}

static int check_crds(struct sync *s, char *err, size_t errlen)
{
	char e[CORE_ERR_MAX] = "";
	json_object *list = NULL;
	int r;

	r = sync_request(s, "GET", SYNC_API_PATH, NULL, NULL, &list, e,
			 sizeof(e));
	if (r == -ENOENT) {
		snprintf(err, errlen, "CRD %s." CORE_API_GROUP " is not "
			 "installed (kubectl apply -f deploy/crds/)",
			 sync_kind_plural(SYNC_VM));
		goto out;
	}
	if (r < 0) {
		snprintf(err, errlen, "the API server at %s: %s%s", s->base,
			 r == -EACCES ? "credentials refused: " : "", e);
		goto out;
	}
	for (int k = 0; k < SYNC_KIND_COUNT; k++) {
		if (has_resource(list, sync_kind_plural(k)))
			continue;
		snprintf(err, errlen, "CRD %s." CORE_API_GROUP " is not "
			 "installed (kubectl apply -f deploy/crds/)",
			 sync_kind_plural(k));
		r = -ENOENT;
		break;
	}
out:
	json_object_put(list);
	return r;
}

static int check_config(const struct sync_config *cfg, char *err,
			size_t errlen)
{
	if (!cfg->creds || !cfg->creds->server) {
		snprintf(err, errlen, "no API server given");
		return -EINVAL;
	}
	if (!cfg->node || !sync_name_ok(cfg->node) ||
	    strlen(cfg->node) + strlen(SYNC_LEASE_PREFIX) > SYNC_NAME_MAX) {
		snprintf(err, errlen, "bad node name \"%s\"",
			 cfg->node ? cfg->node : "");
		return -EINVAL;
	}
	if (!cfg->state_dir || !*cfg->state_dir) {
		snprintf(err, errlen, "no state directory for the outbox");
		return -EINVAL;
	}
	if (cfg->lease_seconds < 0 || cfg->lease_seconds > 3600 ||
	    cfg->watch_seconds < 0 || cfg->watch_seconds > 3600) {
		snprintf(err, errlen, "lease_seconds and watch_seconds must be "
			 "0..3600");
		return -EINVAL;
	}
	return 0;
}

static int init_locks(struct sync *s)
{
	pthread_condattr_t ca;
	int r;

	/* Waits measure intervals: immune to the wall clock jumping. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	r = -pthread_mutex_init(&s->mu, NULL);
	r = r ? r : -pthread_mutex_init(&s->online_mu, NULL);
	r = r ? r : -pthread_cond_init(&s->cv, &ca);
	r = r ? r : -pthread_cond_init(&s->push_cv, &ca);
	pthread_condattr_destroy(&ca);
	s->have_locks = r == 0;
	return r;
}

static int fill(struct sync *s, const struct sync_config *cfg,
		char *err, size_t errlen)
{
	const char *ns = cfg->ns ? cfg->ns :
			 cfg->creds->ns ? cfg->creds->ns : "default";
	char *dir = NULL;
	int r;

	if (!ns_ok(ns)) {
		snprintf(err, errlen, "bad namespace \"%s\"", ns);
		return -EINVAL;
	}
	s->lease_seconds = cfg->lease_seconds ? cfg->lease_seconds : 15;
	s->watch_seconds = cfg->watch_seconds;
	s->online = s->told = 1;
	r = sync_creds_copy(cfg->creds, &s->creds);
	if (r == 0 && (!(s->base = strdup(cfg->creds->server)) ||
		       !(s->ns = strdup(ns)) || !(s->node = strdup(cfg->node)) ||
		       !(s->state_dir = strdup(cfg->state_dir))))
		r = -ENOMEM;
	r = r ? r : init_locks(s);
	if (r == 0 && asprintf(&dir, "%s/outbox", s->state_dir) < 0) {
		dir = NULL;
		r = -ENOMEM;
	}
	if (r < 0) {
		snprintf(err, errlen, "%s", strerror(-r));
		free(dir);
		return r;
	}
	r = sync_outbox_open(dir, &s->ob, err, errlen);
	free(dir);
	if (r == 0)
		r = sync_reporter_new(s);
	for (int k = 0; r == 0 && k < SYNC_KIND_COUNT; k++)
		r = sync_watcher_new(s, k, &s->w[k]);
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	return r;
}

int sync_open(const struct sync_config *cfg, const struct sync_handler *h,
	      void *arg, struct sync **out, char *err, size_t errlen)
{
	struct sync *s;
	int r;

	*out = NULL;
	r = check_config(cfg, err, errlen);
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (h)
		s->h = *h;
	s->arg = arg;
	/* The start counts as a renewal: a node that just started has not
	 * been away for as long as its last Lease is old (sync_lease_age,
	 * self-fencing). */
	clock_gettime(CLOCK_MONOTONIC, &s->renewed);
	r = fill(s, cfg, err, errlen);
	r = r ? r : check_server(s, err, errlen);
	/* A node must come back after a reboot even while the API server is
	 * away: it starts offline and the watches reconnect.  Credentials
	 * refused or CRDs missing are still refused at once. */
	if (r == SYNC_UNREACHABLE) {
		sync_log("%s; starting offline", err);
		s->online = s->told = 0;
		r = 0;
	} else {
		r = r ? r : check_crds(s, err, errlen);
	}
	if (r < 0) {
		sync_close(s);
		return r;
	}
	*out = s;
	return 0;
}

static void stop_threads(struct sync *s)
{
	pthread_mutex_lock(&s->mu);
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&s->cv);
	pthread_cond_broadcast(&s->push_cv);
	pthread_mutex_unlock(&s->mu);
	sync_reporter_wake(s);
	for (int i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	s->nthreads = 0;
}

static int spawn(struct sync *s, void *(*fn)(void *), void *arg)
{
	int r = pthread_create(&s->threads[s->nthreads], NULL, fn, arg);

	if (r == 0)
		s->nthreads++;
	return -r;
}

int sync_start(struct sync *s)
{
	int r = 0;

	if (s->started)
		return -EBUSY;
	s->started = true;
	pthread_mutex_lock(&s->mu);
	clock_gettime(CLOCK_MONOTONIC, &s->renewed);
	pthread_mutex_unlock(&s->mu);
	for (int k = 0; r == 0 && k < SYNC_KIND_COUNT; k++)
		r = spawn(s, sync_watch_main, s->w[k]);
	r = r ? r : spawn(s, sync_lease_main, s);
	r = r ? r : spawn(s, sync_push_main, s);
	r = r ? r : spawn(s, sync_report_main, s);
	if (r < 0)
		stop_threads(s);
	return r;
}

void sync_close(struct sync *s)
{
	if (!s)
		return;
	if (s->have_locks)
		stop_threads(s);
	for (int k = 0; k < SYNC_KIND_COUNT; k++)
		sync_watcher_free(s->w[k]);
	for (size_t i = 0; i < s->npool; i++)
		sync_http_free(s->pool[i]);
	sync_outbox_close(s->ob);
	sync_reporter_free(s);
	for (int i = 0; i < s->nann; i++)
		free(s->ann[i].val);
	sync_creds_free(&s->creds);
	if (s->have_locks) {
		pthread_mutex_destroy(&s->mu);
		pthread_mutex_destroy(&s->online_mu);
		pthread_cond_destroy(&s->cv);
		pthread_cond_destroy(&s->push_cv);
	}
	free(s->base);
	free(s->ns);
	free(s->node);
	free(s->state_dir);
	free(s);
}

/* ---- the calls of sync.h ----------------------------------------------- */

/* Queue while the server is known to be away, and behind anything queued
 * earlier, so that patches of one writer reach the server in order. */
static bool must_queue(struct sync *s)
{
	return !__atomic_load_n(&s->online, __ATOMIC_ACQUIRE) ||
	       sync_outbox_count(s->ob) > 0;
}

/* owner: a status patch that applies only while status.nodeName is owner
 * (NULL: any). */
static int queue(struct sync *s, enum sync_kind k, const char *name,
		 bool status, const char *owner, json_object *body,
		 const char *why, char *err, size_t errlen)
{
	char e[CORE_ERR_MAX] = "";
	int r;

	r = owner ? sync_outbox_add_owned(s->ob, k, name, owner, body, e,
					  sizeof(e)) :
		    sync_outbox_add(s->ob, k, name, status, body, e, sizeof(e));
	if (r < 0) {
		snprintf(err, errlen, "the API server is unreachable (%s) and "
			 "the outbox failed: %s", why, e);
		return r == -ENOMEM ? r : -EIO;
	}
	sync_kick(s);
	snprintf(err, errlen, "queued in the outbox: %s", why);
	return -EAGAIN;
}

/* A merge patch; with an owner (a status patch), the JSON Patch of
 * sync_owned_patch, which applies only while status.nodeName is owner. */
static int patch(struct sync *s, enum sync_kind k, const char *name,
		 bool status, const char *owner, json_object *body, char *err,
		 size_t errlen)
{
	char path[512], e[CORE_ERR_MAX] = "the API server is unreachable";
	json_object *ops;
	int r = -EBUSY;

	if (sync_path(s, k, name, status, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "bad name \"%s\"", name ? name : "");
		return -EINVAL;
	}
	if (owner && !sync_name_ok(owner)) {
		snprintf(err, errlen, "bad owner \"%s\"", owner);
		return -EINVAL;
	}
	if (!json_object_is_type(body, json_type_object)) {
		snprintf(err, errlen, "a merge patch must be a JSON object");
		return -EINVAL;
	}
	if (must_queue(s))
		return queue(s, k, name, status, owner, body,
			     sync_outbox_count(s->ob) ? "earlier patches wait "
			     "there" : "the API server is unreachable", err,
			     errlen);
	ops = owner ? sync_owned_patch(body, owner) : NULL;
	for (int i = 0; i < CONFLICT_TRIES && r == -EBUSY; i++) {
		if (i > 0)
			usleep(20000 * i);
		r = sync_request(s, "PATCH", path, ops ? ops : body,
				 ops ? SYNC_JSON_PATCH : SYNC_MERGE_PATCH, NULL,
				 e, sizeof(e));
		if (!status)
			break;
	}
	json_object_put(ops);
	if (r == SYNC_UNREACHABLE)
		return queue(s, k, name, status, owner, body, e, err, errlen);
	if (r < 0)
		snprintf(err, errlen, "%s", e);
	return r;
}

static json_object *op_new(const char *op, const char *path,
			   json_object *value)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "op", json_object_new_string(op));
	json_object_object_add(o, "path", json_object_new_string(path));
	json_object_object_add(o, "value", value);
	return o;
}

json_object *sync_owned_patch(json_object *body, const char *owner)
{
	json_object *ops = json_object_new_array(), *st;
	char path[SYNC_NAME_MAX * 2 + 16];

	json_object_array_add(ops, op_new("test", "/status/nodeName",
					  json_object_new_string(owner)));
	if (!json_object_object_get_ex(body, "status", &st) ||
	    !json_object_is_type(st, json_type_object))
		return ops;
	json_object_object_foreach(st, key, v) {
		size_t n = (size_t)snprintf(path, sizeof(path), "/status/");

		/* RFC 6901: ~ and / in a key are escaped. */
		for (const char *c = key; *c && n + 3 < sizeof(path); c++)
			n += (size_t)snprintf(path + n, sizeof(path) - n, "%s",
					      *c == '~' ? "~0" : *c == '/' ? "~1" :
					      (char[2]){ *c, 0 });
		json_object_array_add(ops, op_new("add", path,
						  json_object_get(v)));
	}
	return ops;
}

int sync_patch(struct sync *s, enum sync_kind k, const char *name,
	       json_object *p, char *err, size_t errlen)
{
	return patch(s, k, name, false, NULL, p, err, errlen);
}

/* {"status": status_patch}, as patch() sends it. */
static int patch_status(struct sync *s, enum sync_kind k, const char *name,
			const char *owner, json_object *status_patch,
			char *err, size_t errlen)
{
	json_object *body = json_object_new_object();
	int r;

	if (!body) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	json_object_object_add(body, "status", json_object_get(status_patch));
	r = patch(s, k, name, true, owner, body, err, errlen);
	json_object_put(body);
	return r;
}

int sync_patch_status(struct sync *s, enum sync_kind k, const char *name,
		      json_object *status_patch, char *err, size_t errlen)
{
	return patch_status(s, k, name, NULL, status_patch, err, errlen);
}

int sync_patch_status_owned(struct sync *s, enum sync_kind k,
			    const char *name, const char *owner,
			    json_object *status_patch, char *err,
			    size_t errlen)
{
	if (!owner) {
		snprintf(err, errlen, "no owner");
		return -EINVAL;
	}
	return patch_status(s, k, name, owner, status_patch, err, errlen);
}

static int unreachable(struct sync *s, int r, char *err, size_t errlen)
{
	char e[CORE_ERR_MAX];

	if (r == SYNC_UNREACHABLE) {
		snprintf(e, sizeof(e), "%s", err);
		snprintf(err, errlen, "the API server at %s is unreachable: "
			 "%s", s->base, e);
	}
	return r;
}

/* obj with apiVersion, kind and our namespace filled in (a copy). */
static json_object *for_create(struct sync *s, enum sync_kind k,
			       json_object *obj)
{
	json_object *c = NULL, *md;

	if (json_object_deep_copy(obj, &c, NULL) < 0)
		return NULL;
	if (!json_object_object_get_ex(c, "apiVersion", NULL))
		json_object_object_add(c, "apiVersion",
				       json_object_new_string(CORE_API_VERSION));
	if (!json_object_object_get_ex(c, "kind", NULL))
		json_object_object_add(c, "kind",
				       json_object_new_string(sync_kind_name(k)));
	if (!json_object_object_get_ex(c, "metadata", &md) ||
	    !json_object_is_type(md, json_type_object)) {
		md = json_object_new_object();
		json_object_object_add(c, "metadata", md);
	}
	json_object_object_add(md, "namespace", json_object_new_string(s->ns));
	return c;
}

int sync_create(struct sync *s, enum sync_kind k, json_object *obj,
		json_object **created, char *err, size_t errlen)
{
	char path[512];
	json_object *c;
	int r;

	if (created)
		*created = NULL;
	if (!json_object_is_type(obj, json_type_object) ||
	    sync_path(s, k, NULL, false, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "not an object");
		return -EINVAL;
	}
	c = for_create(s, k, obj);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = sync_request(s, "POST", path, c, SYNC_JSON, created, err, errlen);
	json_object_put(c);
	return unreachable(s, r, err, errlen);
}

int sync_delete(struct sync *s, enum sync_kind k, const char *name,
		char *err, size_t errlen)
{
	char path[512];
	int r;

	if (sync_path(s, k, name, false, path, sizeof(path)) < 0 || !name) {
		snprintf(err, errlen, "bad name \"%s\"", name ? name : "");
		return -EINVAL;
	}
	r = sync_request(s, "DELETE", path, NULL, NULL, NULL, err, errlen);
	return unreachable(s, r, err, errlen);
}

int sync_get(struct sync *s, enum sync_kind k, const char *name,
	     json_object **out, char *err, size_t errlen)
{
	char path[512];
	int r;

	*out = NULL;
	if (sync_path(s, k, name, false, path, sizeof(path)) < 0 || !name) {
		snprintf(err, errlen, "bad name \"%s\"", name ? name : "");
		return -EINVAL;
	}
	r = sync_request(s, "GET", path, NULL, NULL, out, err, errlen);
	return unreachable(s, r, err, errlen);
}

int sync_list(const struct sync_creds *c, enum sync_kind k, const char *ns,
	      json_object **out, char *err, size_t errlen)
{
	/* Never set: nothing else runs to cancel a one-shot read. */
	static const int stop;
	struct sync_http *h = NULL;
	struct sync_resp rs = { 0 };
	char path[512], e[CORE_ERR_MAX] = "", *url = NULL;
	json_object *items;
	size_t n;
	int r;

	*out = NULL;
	if (!ns)
		ns = c->ns ? c->ns : "default";
	if (!c->server || !*c->server) {
		snprintf(err, errlen, "no API server given");
		return -EINVAL;
	}
	if ((unsigned)k >= SYNC_KIND_COUNT) {
		snprintf(err, errlen, "no such kind");
		return -EINVAL;
	}
	if (!ns_ok(ns) || kind_path(ns, k, NULL, false, path,
				    sizeof(path)) < 0) {
		snprintf(err, errlen, "bad namespace \"%s\"", ns);
		return -EINVAL;
	}
	n = strlen(c->server);
	while (n > 0 && c->server[n - 1] == '/')
		n--;
	if (asprintf(&url, "%.*s%s", (int)n, c->server, path) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = sync_http_new(c, &stop, &h, err, errlen);
	if (r < 0)
		goto out;
	r = sync_http_do(h, "GET", url, NULL, NULL, &rs, e, sizeof(e));
	if (r == 0)
		r = sync_http_errno(&rs, e, sizeof(e));
	if (r == SYNC_UNREACHABLE)
		snprintf(err, errlen, "the API server at %.*s is unreachable: "
			 "%s", (int)n, c->server, e);
	else if (r < 0)
		snprintf(err, errlen, "%s", e);
	else
		r = parse_answer(&rs, out, err, errlen);
	if (r == 0 && (!json_object_object_get_ex(*out, "items", &items) ||
		       !json_object_is_type(items, json_type_array))) {
		snprintf(err, errlen, "the answer has no items");
		json_object_put(*out);
		*out = NULL;
		r = -EIO;
	}
out:
	sync_resp_free(&rs);
	sync_http_free(h);
	free(url);
	return r;
}

/* The resourceVersion in the patch is a precondition: the server answers
 * 409 if the object changed since the caller read it, so of two nodes
 * claiming from the same read exactly one wins. */
static int assign(struct sync *s, enum sync_kind k, const char *name,
		  const char *resource_version, const char *node,
		  const char *phase, char *err, size_t errlen)
{
	json_object *body, *md, *st;
	char path[512];
	int r;

	if (sync_path(s, k, name, true, path, sizeof(path)) < 0 || !name ||
	    !resource_version || !*resource_version) {
		snprintf(err, errlen, "bad name or resourceVersion");
		return -EINVAL;
	}
	body = json_object_new_object();
	md = json_object_new_object();
	st = json_object_new_object();
	json_object_object_add(md, "resourceVersion",
			       json_object_new_string(resource_version));
	json_object_object_add(st, "nodeName", json_object_new_string(node));
	if (phase)
		json_object_object_add(st, "phase", json_object_new_string(phase));
	json_object_object_add(body, "metadata", md);
	json_object_object_add(body, "status", st);
	r = sync_request(s, "PATCH", path, body, SYNC_MERGE_PATCH, NULL, err,
			 errlen);
	json_object_put(body);
	return unreachable(s, r, err, errlen);
}

int sync_claim(struct sync *s, enum sync_kind k, const char *name,
	       const char *resource_version, char *err, size_t errlen)
{
	return assign(s, k, name, resource_version, s->node, NULL, err, errlen);
}

int sync_give(struct sync *s, enum sync_kind k, const char *name,
	      const char *resource_version, const char *node, char *err,
	      size_t errlen)
{
	if (!node || !*node || !strcmp(node, s->node)) {
		snprintf(err, errlen, "give %s: no other node named", name);
		return -EINVAL;
	}
	return assign(s, k, name, resource_version, node, "Pending", err,
		      errlen);
}

size_t sync_outbox_len(struct sync *s)
{
	return sync_outbox_count(s->ob);
}

time_t sync_outbox_oldest(struct sync *s)
{
	return sync_outbox_since(s->ob);
}
