/* Shared between the files of web/ only; the module's contract is web.h. */
#ifndef HYPERSDK_WEB_PRIV_H
#define HYPERSDK_WEB_PRIV_H

#include <microhttpd.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "web/web.h"

/* assets.c (generated from web/assets/ by gen_assets.py) */
struct web_asset {
	const char *name;
	const char *type;
	const char *etag;
	const unsigned char *data;
	size_t len;
};
extern const struct web_asset web_assets[];
extern const size_t web_nassets;

/* The operation duration histogram (opmetrics.c). */
#define WEB_OP_TYPES (CORE_V_COUNT + 1) /* by verb, then other */
#define WEB_OP_LE 6                     /* buckets besides +Inf */
struct web_op_hist {
	uint64_t count, bucket[WEB_OP_LE];     /* bucket: cumulative */
	double sum;
};

#define WEB_RECENT 64                   /* changes a stream's event merges */
struct web {
	struct web_config cfg;
	int fd;                         /* the listening socket */
	int port;
	bool loopback, v6;
	struct MHD_Daemon *d;
	bool watching;

	/* Change feed for the event streams (the model's watcher). */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t seq;                   /* last change seen */
	unsigned what;                  /* CORE_CHG_* of the last change */
	struct { uint64_t seq; unsigned what; } recent[WEB_RECENT];
					/* the last changes, by seq % size */
	char last_vm[CORE_NAME_MAX + 1];/* "" for tree-level changes */
	bool stopping;
	int streams;                    /* open event streams */

	/* Finished operations counted into /metrics, under op_lock. */
	pthread_mutex_t op_lock;
	struct web_op_hist op_hist[WEB_OP_TYPES];
	char (*op_seen)[CORE_NAME_MAX + 1];     /* sorted names */
	size_t nseen;
};

/* The owner of the client's end (peer) of an established TCP connection
 * to our end (us), from /proc/net/tcp{,6} (peer.c); -ENOENT when it is
 * not listed. */
int web_peer_uid(const struct sockaddr *peer, const struct sockaddr *us,
		 uid_t *uid);

/* A response body being built. */
struct web_buf {
	char *p;
	size_t len, cap;
	bool oom;
};
void web_buf_printf(struct web_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void web_buf_put(struct web_buf *b, const char *s, size_t n);

/* who.c: a request's identity, and the tree's rule for it. */
void web_who_nobody(struct core_cred *c);
void web_who_root(struct core_cred *c);
void web_who_uid(uid_t uid, struct core_cred *c);
/* core_may with the daemon's --group: 0 or -EACCES. */
int web_may(const struct web *w, const struct core_cred *who, uid_t owner,
	    enum core_right r);

/* api.c: JSON bodies for who asks.  Each returns an HTTP status and sets
 * *body (a JSON document the caller frees). */
unsigned web_api_get(struct web *w, const struct web_route *r,
		     const struct core_cred *who, char **body);
unsigned web_api_post(struct web *w, const struct web_route *r,
		      const struct core_cred *who, const char *data,
		      size_t len, char **body);
/* {"error": msg} */
char *web_json_error(const char *msg);
/* o as compact text (o is put); {apiVersion, kind, items}. */
char *web_json_text(json_object *o);
json_object *web_json_list(const char *kind, json_object *items);

/* objects.c: operations, snapshots and templates. */
unsigned web_objects_get(struct web *w, const struct web_route *r,
			 const struct core_cred *who, char **body);
unsigned web_snapshot_delete(struct web *w, const struct web_route *r,
			     const struct core_cred *who, char **body);

/* metrics.c: the Prometheus text exposition. */
char *web_metrics(struct web *w, size_t *len);
/* opmetrics.c: operations, snapshots and templates for it. */
void web_object_metrics(struct web *w, struct web_buf *b);

/* events.c: the event stream. */
void web_events_watch(struct web *w);
void web_events_unwatch(struct web *w);
struct MHD_Response *web_events_response(struct web *w);

#endif
