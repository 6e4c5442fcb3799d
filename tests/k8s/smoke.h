/* Helpers of sync_smoke: a loopback TCP proxy that can cut or refuse the
 * client's connections (and counts them), and running commands without a
 * shell. */
#ifndef HYPERSDK_SMOKE_H
#define HYPERSDK_SMOKE_H

#include "sync/priv.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct proxy;

/* Listen on 127.0.0.1 (a free port) and forward to 127.0.0.1:target. */
int proxy_start(int target, struct proxy **out);
int proxy_port(struct proxy *p);
/* refuse: accept and close at once (a server that is there and is not). */
void proxy_refuse(struct proxy *p, bool refuse);
/* Close every connection now (a cut watch stream). */
void proxy_cut(struct proxy *p);
/* Let nothing through on the connections open now, and keep them open
 * (a peer that vanished without a FIN); new ones work. */
void proxy_freeze(struct proxy *p);
/* Connections accepted so far; reset returns the count and zeroes it. */
unsigned proxy_accepted(struct proxy *p, bool reset);
void proxy_stop(struct proxy *p);

/* Run argv (PATH lookup); stdout (and stderr) into out, trailing newline
 * removed.  The exit status, or -1. */
int run(char *const argv[], char *out, size_t outlen);
double now_ms(void);
void sleep_ms(long ms);

/* ---- sync_smoke.c: context, TAP, the recording handler, kubectl ---- */

#define NODE_A "n1"
#define NODE_B "n2"
#define ERRLEN 512

/* What the handler saw. */
struct rec {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	json_object *objs[SYNC_KIND_COUNT];     /* name -> object */
	json_object *removed;                   /* names */
	json_object *first_seen;                /* name -> ms */
	unsigned synced[SYNC_KIND_COUNT];
	unsigned ups, downs;
	char replayed[256];     /* "name@rv" of the last replayed spec patch */
	unsigned nreplayed;
};

struct smoke {
	const char *dir, *hook, *crds, *work;
	char kubeconfig[512], kcache[512], tmp[512];
	int api_port, n, failed;
	struct proxy *px;
	struct sync_creds creds;        /* straight to the API server */
	struct sync_creds creds_px;     /* through the proxy */
	struct rec rec;
	struct sync *a;                 /* the client under test */
};
extern struct smoke C;

__attribute__((format(printf, 2, 3)))
bool ok(bool cond, const char *fmt, ...);
__attribute__((format(printf, 1, 2)))
void diag(const char *fmt, ...);

/* Wait (at most ms) until pred holds; pred runs with the rec locked. */
typedef bool (*pred_fn)(struct rec *r, const void *arg);
bool wait_for(pred_fn pred, const void *arg, long ms);
bool p_has(struct rec *r, const void *name);    /* a VM */
bool p_gone(struct rec *r, const void *name);   /* a VM, via remove() */
bool p_all_synced(struct rec *r, const void *min);
bool p_downs(struct rec *r, const void *n);
bool p_ups(struct rec *r, const void *n);
struct cpus_is {
	const char *name;
	int cpus;
};
bool p_cpus(struct rec *r, const void *arg);
/* When the handler first saw a VM (now_ms), or -1. */
double seen_at(const char *name);
unsigned synced_vm(void);

/* kubectl ARGS... NULL against the test cluster. */
int kubectl(char *out, size_t outlen, ...);
/* kubectl get OBJ -o jsonpath=PATH (a static buffer). */
const char *jp(const char *obj, const char *path);
int kubectl_vm(const char *name, int cpus);
/* sync.sh apiserver-stop|apiserver-start */
int hook(const char *what);
json_object *J(const char *s);
int vm_create(struct sync *s, const char *name, int cpus,
	      json_object **created, char *err);
int open_client(const struct sync_creds *cr, const char *node,
		const char *state, struct sync **out, char *err);
/* The same with a watch timeoutSeconds. */
int open_client_w(const struct sync_creds *cr, const char *node,
		  const char *state, int watch_seconds, struct sync **out,
		  char *err);

/* ---- smoke_tests.c ---- */

void t_open_errors(void);
bool t_crds(void);
bool t_start(void);
void t_latency(void);
void t_patch(void);
void t_errors(void);
void t_claim(void);
void t_lease(void);
void t_cut(void);
void t_busy(void);
void t_relist(void);
void t_outage(void);
void t_restart_client(void);
void t_dead(void);
void t_incluster(void);

#endif
