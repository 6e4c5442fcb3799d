/* web: the dashboard (/k8s/vms), its JSON API (/api/k8s/...), server-sent
 * events and Prometheus /metrics, served by libmicrohttpd.  Readers copy
 * from the in-memory model and never wait on libvirt; actions go through
 * the daemon's callbacks (web_config's ctl and obj), the ones a ctl write
 * in the tree calls, with the same ctl grammar.
 *
 * Conventions as in core: 0 or -errno, one-line errors in err. */
#ifndef HYPERSDK_WEB_H
#define HYPERSDK_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

#include "core/core.h"

#define WEB_DEFAULT_LISTEN "127.0.0.1:8080"
#define WEB_BODY_MAX (64 * 1024)       /* a request body, at most */
#define WEB_TOKEN_MAX 256

struct web_sync_state {
	bool online;            /* the API server answered last time */
	size_t queued;          /* changes waiting in the outbox */
	time_t oldest;          /* when the oldest of them was queued; 0 */
};

struct web_config {
	const char *listen;             /* "ADDR:PORT", "[V6]:PORT" */
	const char *token;              /* bearer token for POSTs; NULL: none */
	struct core_model *model;
	/* The actions, called with arg from a request's thread and allowed
	 * to block until done; 0 or -errno with the reason in err.  They
	 * are the tree's own (fs_ops' ctl and obj fit as they are), so a
	 * button and a ctl write cannot behave differently.  ctl: msg on
	 * vm, or create when vm is NULL.  obj: verb ("delete", ...) on an
	 * operation, snapshot or template (vm: a snapshot's VM). */
	int (*ctl)(void *arg, const char *vm, const struct core_ctl *msg,
		   char *err, size_t errlen);
	int (*obj)(void *arg, enum core_kind kind, const char *vm,
		   const char *name, const char *verb, json_object *spec,
		   char *err, size_t errlen);
	void *arg;
	const char *node;               /* this node's name, for the page */
	bool cluster;                   /* synced with Kubernetes */
	/* The daemon's --group: requests get the tree's rights (core_may);
	 * NULL: only root (the token) may do anything. */
	const struct core_acl *acl;
	unsigned idle_timeout;          /* seconds a connection may idle; 0: 60 */
	/* Cluster mode: the sync state for /metrics, called with arg. */
	void (*sync_state)(void *arg, struct web_sync_state *st);
};

struct web;

/* Bind the listening socket (so a port in use fails at start-up, before
 * the mount) without serving yet.  A non-loopback address without a
 * token is -EPERM.  cfg's strings must outlive w. */
int web_open(const struct web_config *cfg, struct web **out, char *err,
	     size_t errlen);
/* Serve (threads of libmicrohttpd's own). */
int web_start(struct web *w, char *err, size_t errlen);
/* The port bound (useful with port 0). */
int web_port(const struct web *w);
/* Refuse new actions (503) and end the event streams, before the daemon
 * stops what actions use.  NULL is fine. */
void web_quiesce(struct web *w);
/* Stop serving, end the event streams, free.  NULL is fine. */
void web_free(struct web *w);

/* Read a bearer token: the first line of a file, surrounding blanks
 * dropped; it must be 16..WEB_TOKEN_MAX-1 printable bytes. */
int web_read_token(const char *path, char *buf, size_t len, char *err,
		   size_t errlen);

/* ---- pure parsers (no I/O; fuzzed by tests/fuzz/fuzz_webapi) ------ */

/* "127.0.0.1:8080", "[::1]:8080", "localhost:8080", "0.0.0.0:80".
 * Numeric addresses only (besides localhost): no DNS at start-up. */
int web_parse_listen(const char *s, struct sockaddr_storage *sa,
		     socklen_t *salen, bool *loopback, char *err,
		     size_t errlen);

/* A bearer token as given (a file's first line, an environment
 * variable): surrounding blanks dropped, then 16..WEB_TOKEN_MAX-1
 * printable bytes; what names the source in err. */
int web_parse_token(const char *s, const char *what, char *buf, size_t len,
		    char *err, size_t errlen);

/* A Host header naming the loopback address: 127.x.x.x, localhost or
 * [::1], with an optional port, and nothing else. */
bool web_host_loopback(const char *host);

/* The body of POST /api/k8s/vms/NS/NAME/actions: {"action":"start"}
 * (one verb, optionally "force":true) or {"ctl":"clone web2 linked"},
 * parsed with the grammar of a VM's ctl file. */
int web_parse_action(const char *body, size_t len, struct core_ctl *out,
		     char *err, size_t errlen);
/* The body of POST /api/k8s/vms: {"name":"web","cpus":2,
 * "memory":"1Gi","disk":"10Gi","template":"t","running":true} or
 * {"ctl":"create web cpus=2"}, parsed with vms/ctl's grammar. */
int web_parse_create(const char *body, size_t len, struct core_ctl *out,
		     char *err, size_t errlen);

enum web_route_kind {
	WEB_R_NONE,             /* 404 */
	WEB_R_ROOT,             /* / -> redirect to the page */
	WEB_R_PAGE,             /* /k8s/vms */
	WEB_R_ASSET,            /* /assets/FILE */
	WEB_R_METRICS,          /* /metrics */
	WEB_R_HEALTH,           /* /healthz */
	WEB_R_CONFIG,           /* /api/k8s/config */
	WEB_R_VMS,              /* /api/k8s/vms */
	WEB_R_VM,               /* /api/k8s/vms/NS/NAME */
	WEB_R_VM_ACTIONS,       /* /api/k8s/vms/NS/NAME/actions */
	WEB_R_TEMPLATES,        /* /api/k8s/templates */
	WEB_R_SNAPSHOTS,        /* /api/k8s/snapshots[?vm=NAME] */
	WEB_R_SNAPSHOT_DELETE,  /* /api/k8s/snapshots/NS/NAME/delete */
	WEB_R_VM_METRICS,       /* /api/k8s/vm-metrics */
	WEB_R_OPERATIONS,       /* /api/k8s/operations */
	WEB_R_EVENTS,           /* /api/k8s/events (text/event-stream) */
	WEB_R_NODES,            /* /api/k8s/nodes */
};

struct web_route {
	enum web_route_kind kind;
	char ns[CORE_NAME_MAX + 1];
	char name[CORE_NAME_MAX + 1];
	char asset[64];         /* WEB_R_ASSET: the file name */
	char vm[CORE_NAME_MAX + 1]; /* WEB_R_SNAPSHOTS: ?vm= ("" for all);
				     * set by the server, not web_route */
};

/* Map a request path (no query) to a route.  A malformed NS or NAME is
 * -EINVAL with the reason; an unknown path is WEB_R_NONE. */
int web_route(const char *path, struct web_route *r, char *err,
	      size_t errlen);
/* Whether a method may be used on a route (GET reads, POST acts). */
bool web_method_ok(enum web_route_kind k, const char *method);
/* The HTTP status for an action's -errno. */
unsigned web_http_status(int rc);

#endif
