/* The HTTP server: libmicrohttpd with one thread per connection, since an
 * action (a POST) blocks until it is done, as a ctl write does, and an
 * event stream sleeps until the model changes; neither may hold up other
 * requests.  Every request passes the checks here before api.c sees it:
 * Host (DNS rebinding), method, and for POSTs the bearer token, the
 * cross-site checks and the body limit. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "web/priv.h"

#define CONN_MAX 64

static const char csp[] =
	"default-src 'none'; script-src 'self'; style-src 'self'; "
	"img-src 'self'; connect-src 'self'; base-uri 'none'; "
	"form-action 'none'; frame-ancestors 'none'";

struct req {
	struct web_route route;
	char *body;
	size_t len;
	bool too_big;
	bool answered;          /* refused on the first call */
	struct core_cred who;   /* who asks (who.c) */
	bool token;             /* it carried the right bearer token */
};

static void security_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "Content-Security-Policy", csp);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
}

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status,
			     struct MHD_Response *r, const char *type,
			     const char *cache)
{
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	security_headers(r);
	if (type)
		MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", cache);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Takes body (malloc'ed JSON). */
static enum MHD_Result json(struct MHD_Connection *c, unsigned status,
			    char *body)
{
	struct MHD_Response *r;

	if (!body)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body,
					    MHD_RESPMEM_MUST_FREE);
	if (!r)
		free(body);
	return queue(c, status, r, "application/json", "no-store");
}

/* An error answer {"error": msg}, with one more header when hname. */
static enum MHD_Result error_hdr(struct MHD_Connection *c, unsigned status,
				 const char *msg, const char *hname,
				 const char *hval)
{
	char *body = web_json_error(msg);
	struct MHD_Response *r;

	if (!body)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body,
					    MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	if (hname)
		MHD_add_response_header(r, hname, hval);
	return queue(c, status, r, "application/json", "no-store");
}

static enum MHD_Result error(struct MHD_Connection *c, unsigned status,
			     const char *msg)
{
	return error_hdr(c, status, msg, NULL, NULL);
}

static const struct web_asset *asset(const char *name)
{
	for (size_t i = 0; i < web_nassets; i++)
		if (!strcmp(web_assets[i].name, name))
			return &web_assets[i];
	return NULL;
}

/* Files are revalidated on every load (no-cache + ETag): a daemon
 * upgrade never leaves a stale script behind a fresh page. */
static enum MHD_Result serve_asset(struct MHD_Connection *c, const char *name)
{
	const struct web_asset *a = asset(name);
	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						      "If-None-Match");
	struct MHD_Response *r;
	bool same;

	if (!a)
		return error(c, 404, "not found");
	same = inm && !strcmp(inm, a->etag);
	r = MHD_create_response_from_buffer(same ? 0 : a->len, (void *)a->data,
					    MHD_RESPMEM_PERSISTENT);
	if (r)
		MHD_add_response_header(r, "ETag", a->etag);
	return queue(c, same ? 304 : 200, r, a->type, "no-cache");
}

static enum MHD_Result redirect(struct MHD_Connection *c, const char *to)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		0, "", MHD_RESPMEM_PERSISTENT);

	if (r)
		MHD_add_response_header(r, "Location", to);
	return queue(c, 302, r, NULL, "no-store");
}

static enum MHD_Result serve_metrics(struct web *w, struct MHD_Connection *c)
{
	struct MHD_Response *r;
	size_t len = 0;
	char *txt = web_metrics(w, &len);

	if (!txt)
		return error(c, 500, "out of memory");
	r = MHD_create_response_from_buffer(len, txt, MHD_RESPMEM_MUST_FREE);
	if (!r)
		free(txt);
	return queue(c, 200, r, "text/plain; version=0.0.4; charset=utf-8",
		     "no-store");
}

static enum MHD_Result serve_events(struct web *w, struct MHD_Connection *c)
{
	struct MHD_Response *r = web_events_response(w);

	if (!r)
		return error(c, 503, "too many event streams");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	return queue(c, 200, r, "text/event-stream", "no-store");
}

static enum MHD_Result serve_get(struct web *w, struct MHD_Connection *c,
				 const struct web_route *rt,
				 const struct core_cred *who)
{
	char *body = NULL;
	unsigned status;

	switch (rt->kind) {
	case WEB_R_ROOT: return redirect(c, "/k8s/vms");
	case WEB_R_PAGE: return serve_asset(c, "index.html");
	case WEB_R_ASSET: return serve_asset(c, rt->asset);
	case WEB_R_METRICS: return serve_metrics(w, c);
	case WEB_R_EVENTS: return serve_events(w, c);
	case WEB_R_HEALTH: return json(c, 200, strdup("{\"ok\":true}"));
	default:
		status = web_api_get(w, rt, who, &body);
		return json(c, status, body);
	}
}

/* ---- the checks ------------------------------------------------------ */

static bool stopping(struct web *w)
{
	bool s;

	pthread_mutex_lock(&w->lock);
	s = w->stopping;
	pthread_mutex_unlock(&w->lock);
	return s;
}

static const char *header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* Bound to loopback, only loopback names may be in Host: a page of
 * another site that rebinds its name to 127.0.0.1 is refused. */
static bool host_ok(struct MHD_Connection *c)
{
	return web_host_loopback(header(c, "Host"));
}

static bool token_ok(struct web *w, struct MHD_Connection *c)
{
	const char *a = header(c, "Authorization");
	const char *t = w->cfg.token;
	size_t n = strlen(t);
	unsigned char diff = 0;

	if (!a || strncasecmp(a, "Bearer ", 7) != 0 || strlen(a + 7) != n)
		return false;
	for (size_t i = 0; i < n; i++)  /* constant time */
		diff |= (unsigned char)(a[7 + i] ^ t[i]);
	return diff == 0;
}

/* A browser says where a request comes from (Sec-Fetch-Site, Origin);
 * anything but our own origin is refused. */
static bool same_origin(struct MHD_Connection *c)
{
	const char *site = header(c, "Sec-Fetch-Site");
	const char *origin = header(c, "Origin");
	const char *host = header(c, "Host");

	if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
		return false;
	if (!origin)
		return true;
	/* https: behind a TLS proxy that keeps Host. */
	if (!strncmp(origin, "https://", 8))
		return host && !strcmp(origin + 8, host);
	return host && !strncmp(origin, "http://", 7) && !strcmp(origin + 7, host);
}

/* Only application/json: a form cannot send it, and a script of another
 * origin needs a CORS preflight, which is never approved. */
static bool is_json(struct MHD_Connection *c)
{
	const char *t = header(c, "Content-Type");
	size_t n = strlen("application/json");

	return t && !strncasecmp(t, "application/json", n) &&
	       (t[n] == '\0' || t[n] == ';' || t[n] == ' ');
}

/* Who asks: the token's holder is root; without it, on loopback, the
 * user owning the client's socket (anyone on this host reaches
 * 127.0.0.1, so the address alone says nothing); else nobody.  True
 * when the request carried the right token. */
static bool identify(struct web *w, struct MHD_Connection *c,
		     struct core_cred *who)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const union MHD_ConnectionInfo *fd =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct sockaddr_storage us;
	socklen_t len = sizeof(us);
	uid_t uid;

	web_who_nobody(who);
	if (w->cfg.token && w->cfg.token[0] && token_ok(w, c)) {
		web_who_root(who);
		return true;
	}
	if (w->loopback && ci && ci->client_addr && fd &&
	    getsockname(fd->connect_fd, (struct sockaddr *)&us, &len) == 0 &&
	    web_peer_uid(ci->client_addr, (struct sockaddr *)&us, &uid) == 0)
		web_who_uid(uid, who);
	return false;
}

/* What a client needs before it can have a token: the page, its
 * assets, the config that says a token is needed, the health check. */
static bool public_route(enum web_route_kind k)
{
	return k == WEB_R_ROOT || k == WEB_R_PAGE || k == WEB_R_ASSET ||
	       k == WEB_R_HEALTH || k == WEB_R_CONFIG;
}

static bool too_long(struct MHD_Connection *c)
{
	const char *l = header(c, "Content-Length");

	return l && strtoull(l, NULL, 10) > WEB_BODY_MAX;
}

static unsigned no(const char **why, const char *msg, unsigned status)
{
	*why = msg;
	return status;
}

/* 0 when the request may go on, else the status it was refused with. */
static unsigned refuse(struct web *w, struct MHD_Connection *c,
		       const char *method, const struct req *q,
		       const char **why)
{
	const struct web_route *rt = &q->route;
	const struct core_cred *who = &q->who;
	bool post = !strcmp(method, "POST");

	*why = "bad request";
	if (w->loopback && !host_ok(c))
		return no(why, "Host must name the loopback address", 421);
	if (rt->kind == WEB_R_NONE)
		return no(why, "not found", 404);
	if (!web_method_ok(rt->kind, method))
		return no(why, post ? "POST is not allowed here" :
			  "only GET here, and POST for actions", 405);
	/* Off loopback anyone on the network asks: VM data needs the token
	 * for reading too (the page itself and its config do not). */
	if (!post && !w->loopback && !public_route(rt->kind) && !q->token)
		return no(why, "missing or wrong bearer token", 401);
	/* Every VM's usage, and the stream of every change: as the tree
	 * shows them, to root (the metrics) and the group (the events). */
	if (rt->kind == WEB_R_METRICS && web_may(w, who, 0, CORE_R_ADMIN) < 0)
		return no(why, "permission denied: /metrics is root's (or the "
			  "token's)", 403);
	if (rt->kind == WEB_R_EVENTS && web_may(w, who, 0, CORE_R_SEE) < 0)
		return no(why, "permission denied: the event stream is for root "
			  "and the daemon's group", 403);
	if (!post)
		return 0;
	/* An action begun now would hold the shutdown up until it ended. */
	if (stopping(w))
		return no(why, "the daemon is stopping", 503);
	if (w->cfg.token && w->cfg.token[0] && !q->token)
		return no(why, "missing or wrong bearer token", 401);
	if (!same_origin(c))
		return no(why, "cross-site request refused", 403);
	if (!is_json(c))
		return no(why, "Content-Type must be application/json", 415);
	if (too_long(c))
		return no(why, "request body too long (at most 64 KiB)", 413);
	return 0;
}

/* ---- the request callback --------------------------------------------- */

/* GET /api/k8s/snapshots?vm=NAME: the filter, checked as a path name is. */
static int query_vm(struct MHD_Connection *c, struct web_route *r, char *err,
		    size_t errlen)
{
	const char *v;

	if (r->kind != WEB_R_SNAPSHOTS)
		return 0;
	v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "vm");
	if (!v || !*v)
		return 0;
	if (core_name_check(v, err, errlen) < 0) {
		snprintf(err, errlen, "bad vm name in ?vm=");
		return -EINVAL;
	}
	snprintf(r->vm, sizeof(r->vm), "%s", v);
	return 0;
}

static enum MHD_Result first_call(struct web *w, struct MHD_Connection *c,
				  const char *url, const char *method,
				  struct req *q)
{
	char err[CORE_ERR_MAX] = "";
	const char *why, *allow;
	unsigned status;

	if (web_route(url, &q->route, err, sizeof(err)) < 0 ||
	    query_vm(c, &q->route, err, sizeof(err)) < 0) {
		q->answered = true;
		return error(c, 400, err);
	}
	q->token = identify(w, c, &q->who);
	status = refuse(w, c, method, q, &why);
	if (!status)
		return MHD_YES;
	q->answered = true;
	if (status == 401)
		return error_hdr(c, status, why, "WWW-Authenticate", "Bearer");
	if (status != 405)
		return error(c, status, why);
	allow = q->route.kind == WEB_R_VM_ACTIONS ||
		q->route.kind == WEB_R_SNAPSHOT_DELETE ? "POST" :
		q->route.kind == WEB_R_VMS ? "GET, HEAD, POST" : "GET, HEAD";
	return error_hdr(c, status, why, "Allow", allow);
}

static void take_body(struct req *q, const char *data, size_t n)
{
	char *p;

	if (q->too_big || q->len + n > WEB_BODY_MAX) {
		q->too_big = true;
		return;
	}
	p = realloc(q->body, q->len + n + 1);
	if (!p) {
		q->too_big = true;
		return;
	}
	memcpy(p + q->len, data, n);
	q->body = p;
	q->len += n;
	q->body[q->len] = '\0';
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
			      const char *url, const char *method,
			      const char *version, const char *data,
			      size_t *size, void **con_cls)
{
	struct web *w = cls;
	struct req *q = *con_cls;
	char *body = NULL;
	unsigned status;

	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return MHD_NO;
		*con_cls = q;
		return first_call(w, c, url, method, q);
	}
	if (q->answered)
		return MHD_YES;         /* a refused body is dropped */
	if (*size) {
		take_body(q, data, *size);
		*size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "POST") != 0)
		return serve_get(w, c, &q->route, &q->who);
	if (q->too_big)
		return error(c, 413, "request body too long (at most 64 KiB)");
	/* Its headers may have come before the daemon began to stop. */
	if (stopping(w))
		return error(c, 503, "the daemon is stopping");
	status = web_api_post(w, &q->route, &q->who, q->body ? q->body : "",
			      q->len, &body);
	return json(c, status, body);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct req *q = *con_cls;

	if (q) {
		free(q->body);
		free(q);
		*con_cls = NULL;
	}
}

/* ---- lifetime --------------------------------------------------------- */

static int bind_socket(struct web *w, char *err, size_t errlen)
{
	struct sockaddr_storage sa, got;
	socklen_t salen, glen = sizeof(got);
	const int one = 1;
	int rc, e;

	rc = web_parse_listen(w->cfg.listen, &sa, &salen, &w->loopback, err,
			      errlen);
	if (rc < 0)
		return rc;
	w->v6 = sa.ss_family == AF_INET6;
	w->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (w->fd < 0 ||
	    setsockopt(w->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(w->fd, (struct sockaddr *)&sa, salen) < 0 ||
	    listen(w->fd, 64) < 0 ||
	    getsockname(w->fd, (struct sockaddr *)&got, &glen) < 0) {
		e = errno;
		snprintf(err, errlen, "--http %s: %s", w->cfg.listen, strerror(e));
		return -e;
	}
	w->port = ntohs(got.ss_family == AF_INET6 ?
			((struct sockaddr_in6 *)&got)->sin6_port :
			((struct sockaddr_in *)&got)->sin_port);
	return 0;
}

static void init_sync(struct web *w)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&w->lock, NULL);
	pthread_mutex_init(&w->op_lock, NULL);
	/* The event streams wait with deadlines on the monotonic clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
}

int web_open(const struct web_config *cfg, struct web **out, char *err,
	     size_t errlen)
{
	struct web *w = calloc(1, sizeof(*w));
	int rc = -ENOMEM;

	*out = NULL;
	if (!w)
		goto out;
	w->cfg = *cfg;
	w->fd = -1;
	init_sync(w);
	/* Refused now rather than a crash at the first button pressed. */
	if (!w->cfg.ctl || !w->cfg.obj) {
		snprintf(err, errlen, "no actions given (ctl and obj)");
		rc = -EINVAL;
		goto out;
	}
	rc = bind_socket(w, err, errlen);
	if (rc == 0 && !w->loopback && !(cfg->token && cfg->token[0])) {
		snprintf(err, errlen, "--http %s is not a loopback address: "
			 "give --http-token FILE (or HYPERSDK_HTTP_TOKEN)",
			 cfg->listen);
		rc = -EPERM;
	}
out:
	if (rc < 0)
		web_free(w);
	else
		*out = w;
	return rc;
}

int web_start(struct web *w, char *err, size_t errlen)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;

	if (w->v6)
		flags |= MHD_USE_IPv6;
	web_events_watch(w);
	w->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, w,
		MHD_OPTION_LISTEN_SOCKET, w->fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONN_MAX,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)(CONN_MAX - 8),
		MHD_OPTION_CONNECTION_TIMEOUT,
		w->cfg.idle_timeout ? w->cfg.idle_timeout : 60u,
		MHD_OPTION_NOTIFY_COMPLETED, completed, w,
		MHD_OPTION_END);
	if (!w->d) {
		web_events_unwatch(w);
		snprintf(err, errlen, "--http %s: cannot start the HTTP server",
			 w->cfg.listen);
		return -EIO;
	}
	w->fd = -1;             /* the daemon's now */
	return 0;
}

int web_port(const struct web *w)
{
	return w ? w->port : 0;
}

void web_quiesce(struct web *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void web_free(struct web *w)
{
	if (!w)
		return;
	web_quiesce(w);
	if (w->d)
		MHD_stop_daemon(w->d);
	web_events_unwatch(w);
	if (w->fd >= 0)
		close(w->fd);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	pthread_mutex_destroy(&w->op_lock);
	free(w->op_seen);
	free(w);
}

int web_read_token(const char *path, char *buf, size_t len, char *err,
		   size_t errlen)
{
	FILE *f = fopen(path, "re");
	char line[WEB_TOKEN_MAX + 2] = "", what[300];
	int rc;

	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "--http-token %s: %s", path, strerror(-rc));
		return rc;
	}
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	snprintf(what, sizeof(what), "--http-token %s", path);
	return web_parse_token(line, what, buf, len, err, errlen);
}
