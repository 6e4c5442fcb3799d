/* sync: what the module's files share.  Not installed, not for mountd. */
#ifndef HYPERSDK_SYNC_PRIV_H
#define HYPERSDK_SYNC_PRIV_H

#include "sync/sync.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#define SYNC_API_PATH "/apis/" CORE_API_VERSION
#define SYNC_LEASE_PREFIX "hypersdk-node-"
/* reportingController of our Events */
#define SYNC_REPORTER "hypersdk.io/mountd"
/* Transport failures and "not now" answers (429, 502-504) of the API
 * server: the only results that send a patch to the outbox. */
#define SYNC_UNREACHABLE (-EHOSTUNREACH)
/* A watch stream that was open and then broke: re-watch, but this does
 * not say the server is down. */
#define SYNC_CUT (-ECONNRESET)
/* An object name or namespace as it may appear in a URL path. */
#define SYNC_NAME_MAX 253

/* ---- files (kubeconfig.c) ------------------------------------------ */

/* Read a whole file (at most max bytes) into a NUL-terminated buffer. */
int sync_read_file(const char *path, size_t max, char **out, size_t *len);
/* The same as a string with trailing white space removed (tokens). */
int sync_read_token(const char *path, char **out);
/* The credentials of a context of a parsed kubeconfig whose paths are
 * absolute (borrowed root). */
int sync_kubeconfig_resolve(json_object *root, const char *context,
			    struct sync_creds *out, char *err, size_t errlen);
/* kcmerge.c: the files of a KUBECONFIG list merged as kubectl does: the
 * first file to name a cluster, user or context wins, current-context
 * comes from the first file that sets it; relative paths are made
 * absolute against their own file's folder; missing files are skipped. */
int sync_kubeconfig_merge(const char *list, json_object **root, char *err,
			  size_t errlen);
/* Deep copy of credentials. */
int sync_creds_copy(const struct sync_creds *in, struct sync_creds *out);

/* ---- pure helpers (event.c) ---------------------------------------- */

/* Splits a byte stream into lines without copying what it need not. */
struct sync_lines {
	char *buf;
	size_t len, cap, max;   /* max: the longest line accepted */
};
typedef int (*sync_line_fn)(void *arg, const char *line, size_t len);
/* Calls fn for each complete line (without "\n" or "\r\n"); stops at the
 * first non-zero return of fn and returns it; -E2BIG for a line longer
 * than l->max (0: 64 MiB); -ENOMEM. */
int sync_lines_feed(struct sync_lines *l, const char *p, size_t n,
		    sync_line_fn fn, void *arg);
void sync_lines_reset(struct sync_lines *l);
void sync_lines_free(struct sync_lines *l);

/* Parse one JSON object; -EINVAL for anything else. */
int sync_json_parse(const char *buf, size_t len, json_object **out);
/* obj.metadata.<key> as a string, or NULL. */
const char *sync_meta_str(json_object *obj, const char *key);
/* A Status object's code (0 when there is none). */
int sync_status_code(json_object *status);
/* RFC 7386 composition: the patch that has the effect of applying older
 * and then newer (exact except where newer sets an object under a key
 * that older set to a non-object).  New reference; inputs untouched. */
json_object *sync_merge_compose(json_object *older, json_object *newer);
/* RFC 7386 application, for tests: a new document. */
json_object *sync_merge_apply(json_object *target, json_object *patch);
/* "2026-11-26T15:04:05.000000Z" (Kubernetes MicroTime) for now. */
void sync_micro_time(char *buf, size_t len);
/* Parse RFC 3339 (with optional fraction and offset) to seconds. */
int sync_parse_time(const char *s, double *out);

/* ---- HTTP (http.c) ------------------------------------------------- */

/* One curl easy handle: used by one thread at a time. */
struct sync_http;

struct sync_resp {
	long code;
	char *body;             /* NUL-terminated */
	size_t len, cap;
};

/* stop: when it becomes non-zero, transfers in progress are aborted
 * (-ECANCELED) within about a second. */
int sync_http_new(const struct sync_creds *c, const int *stop,
		  struct sync_http **out, char *err, size_t errlen);
void sync_http_free(struct sync_http *h);
/* The timeout of each later request (default 30 s; 0 restores it). */
void sync_http_timeout(struct sync_http *h, long ms);
/* One request.  0 when the server answered (any code; see rs->code),
 * SYNC_UNREACHABLE when it did not, -ECANCELED, -EIO (e.g. TLS
 * verification failed) with err set. */
int sync_http_do(struct sync_http *h, const char *method, const char *url,
		 const char *body, const char *ctype, struct sync_resp *rs,
		 char *err, size_t errlen);
void sync_resp_free(struct sync_resp *rs);

struct sync_stream {
	const char *url;
	long timeout_s;         /* the whole transfer: the idle bound */
	int (*open)(void *arg); /* a 200 answer has begun */
	sync_line_fn line;      /* each line of a 200 answer */
	void *arg;
	struct sync_resp rs;    /* out: code; the body of a non-200 answer */
};
/* A streaming GET.  0 when the server ended the stream; the line
 * callback's non-zero return; SYNC_UNREACHABLE before the answer began,
 * SYNC_CUT after; -ECANCELED. */
int sync_http_stream(struct sync_http *h, struct sync_stream *st, char *err,
		     size_t errlen);
/* An answer's code as 0 or -errno (see sync.h), with the Status message
 * in err.  410 is -ESTALE; 429 and 502-504 are SYNC_UNREACHABLE. */
int sync_http_errno(const struct sync_resp *rs, char *err, size_t errlen);

/* ---- the client (client.c) ----------------------------------------- */

struct sync_watcher;
struct sync_outbox;
struct sync_reporter;

struct sync {
	char *base;             /* the server URL without a trailing '/' */
	char *ns, *node, *state_dir;
	int lease_seconds, watch_seconds;
	struct sync_creds creds; /* our own copy */
	struct sync_handler h;
	void *arg;

	pthread_mutex_t mu;     /* pool, kick, sleeping */
	pthread_cond_t cv;      /* stop */
	pthread_cond_t push_cv; /* stop, outbox additions, back online */
	int stop;               /* atomic; curl progress callbacks read it */
	unsigned kick;          /* bumps wake the pusher */
	struct sync_http *pool[8];
	size_t npool;

	int online;             /* atomic: what the last exchange showed */
	int told;               /* what h.online last heard */
	pthread_mutex_t online_mu;

	/* The Lease (lease.c), under mu: annotations to publish, renewals
	 * asked for, and when it was last renewed (CLOCK_MONOTONIC). */
	struct sync_ann {
		char key[64];
		char *val;      /* NULL: remove it */
	} ann[16];
	int nann;
	unsigned lease_kick;
	struct timespec renewed;

	struct sync_outbox *ob;
	struct sync_reporter *rep;
	struct sync_watcher *w[SYNC_KIND_COUNT];
	pthread_t threads[SYNC_KIND_COUNT + 3];
	int nthreads;
	bool started, have_locks;
};

/* Borrow a handle from the pool (or make one); give it back. */
int sync_http_take(struct sync *s, struct sync_http **out, char *err,
		   size_t errlen);
void sync_http_give(struct sync *s, struct sync_http *h);
/* Record whether the server answered; tells h.online on transitions. */
void sync_note(struct sync *s, bool up);
/* A request to base+path with a JSON body; the answer's JSON in *out
 * (may be NULL).  Errnos as sync.h; SYNC_UNREACHABLE. */
int sync_request(struct sync *s, const char *method, const char *path,
		 json_object *body, const char *ctype, json_object **out,
		 char *err, size_t errlen);
/* The same on a handle of the calling thread's own. */
int sync_request_on(struct sync *s, struct sync_http *h, const char *method,
		    const char *path, json_object *body, const char *ctype,
		    json_object **out, char *err, size_t errlen);
/* SYNC_API_PATH "/namespaces/NS/PLURAL[/NAME[/status]]" */
int sync_path(const struct sync *s, enum sync_kind k, const char *name,
	      bool status, char *buf, size_t len);
/* Content types of sync_request's bodies. */
#define SYNC_JSON "application/json"
#define SYNC_MERGE_PATCH "application/merge-patch+json"
#define SYNC_JSON_PATCH "application/json-patch+json"
bool sync_stopping(struct sync *s);
/* Wait ms, or until stopping (true), or until *seen differs from *counter
 * (seen may be NULL), which then becomes *seen; the counter is s->mu's. */
bool sync_wait_for(struct sync *s, pthread_cond_t *cv, long ms, unsigned *seen,
		   const unsigned *counter);
/* sync_wait_for on the pusher's kick counter. */
bool sync_wait(struct sync *s, pthread_cond_t *cv, long ms, unsigned *seen);
void sync_kick(struct sync *s);
void sync_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Exponential backoff with jitter: 100 ms doubling to 10 s; each delay is
 * drawn from [3/4 d, d] so that nodes that lost the server together do
 * not come back in step. */
struct sync_backoff {
	long d;
	unsigned seed;
};
long sync_backoff_next(struct sync_backoff *b);
void sync_backoff_reset(struct sync_backoff *b);

/* ---- threads (watch.c, lease.c, outbox.c) -------------------------- */

int sync_watcher_new(struct sync *s, enum sync_kind k,
		     struct sync_watcher **out);
void sync_watcher_free(struct sync_watcher *w);
void *sync_watch_main(void *arg);         /* arg: a sync_watcher */
void *sync_lease_main(void *arg);         /* arg: struct sync */
void *sync_push_main(void *arg);          /* arg: struct sync */
void *sync_report_main(void *arg);        /* arg: struct sync */

/* ---- Events (report.c) ---------------------------------------------- */

int sync_reporter_new(struct sync *s);
void sync_reporter_free(struct sync *s);
void sync_reporter_wake(struct sync *s);
/* One Event request on h: its POST (create), else its series' merge
 * patch; for the outbox's replay.  Errnos as sync_request_on. */
int sync_report_push(struct sync *s, struct sync_http *h, const char *ev,
		     bool create, json_object *body, char *err,
		     size_t errlen);

/* ---- the outbox (outbox.c) ----------------------------------------- */

int sync_outbox_open(const char *dir, struct sync_outbox **out, char *err,
		     size_t errlen);
void sync_outbox_close(struct sync_outbox *ob);
/* Queue the body of a PATCH (status: to the status subresource).  Status
 * bodies of one object are coalesced; see outbox.c. */
int sync_outbox_add(struct sync_outbox *ob, enum sync_kind k,
		    const char *name, bool status, json_object *body,
		    char *err, size_t errlen);
/* {"status": {...}} as a JSON Patch: a test that status.nodeName is
 * owner, then an add of each field of status.  New reference. */
json_object *sync_owned_patch(json_object *body, const char *owner);
/* Queue a status patch that applies only while the object's
 * status.nodeName is owner (sync_patch_status_owned). */
int sync_outbox_add_owned(struct sync_outbox *ob, enum sync_kind k,
			  const char *name, const char *owner,
			  json_object *body, char *err, size_t errlen);
/* Queue an Event's POST (create) or its series' merge patch (report.c);
 * series patches of one Event are coalesced. */
int sync_outbox_add_event(struct sync_outbox *ob, const char *name,
			  bool create, json_object *body, char *err,
			  size_t errlen);
size_t sync_outbox_count(struct sync_outbox *ob);
/* When the oldest change still waiting was queued; 0 when none is. */
time_t sync_outbox_since(struct sync_outbox *ob);

struct sync_outbox_entry {
	uint64_t seq;
	enum sync_kind k;
	char name[SYNC_NAME_MAX + 1];
	bool status;
	bool event, create;     /* an Event: its POST, else its series */
	char owner[CORE_NAME_MAX + 1];  /* "" or sync_outbox_add_owned's */
	json_object *body;      /* owned by the caller of peek */
};
/* The oldest entry; -ENOENT when empty. */
int sync_outbox_peek(struct sync_outbox *ob, struct sync_outbox_entry *e);
/* The server has it (or it is dropped): forget it for good. */
void sync_outbox_done(struct sync_outbox *ob, uint64_t seq);

#endif
