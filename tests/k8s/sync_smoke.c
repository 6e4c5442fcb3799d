/* The sync module against a real kube-apiserver (driven by sync.sh).
 *
 *   sync_smoke FIRST CLUSTER_DIR HOOK CRD_DIR WORK
 *
 * Prints TAP lines numbered from FIRST (no plan: sync.sh prints it) and
 * writes "<ran> <failed>" to WORK/smoke.result.  HOOK is sync.sh itself,
 * called as "HOOK apiserver-stop|apiserver-start CLUSTER_DIR" to kill the
 * API server and start it again on the same port with the same etcd.  The
 * client under test reaches the server through a loopback proxy that can
 * cut its streams or refuse it, and counts its connection attempts. */
#include "smoke.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <dirent.h>
#include <signal.h>

struct smoke C;

/* ---- TAP ---------------------------------------------------------------- */

bool ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", cond ? "" : "not ", C.n++);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	C.failed += !cond;
	return cond;
}

void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* ---- the recording handler ---------------------------------------------- */

static void on_upsert(void *arg, enum sync_kind k, json_object *o)
{
	struct rec *r = arg;
	const char *name = sync_meta_str(o, "name");

	pthread_mutex_lock(&r->mu);
	json_object_object_add(r->objs[k], name, json_object_get(o));
	if (!json_object_object_get_ex(r->first_seen, name, NULL))
		json_object_object_add(r->first_seen, name,
				       json_object_new_double(now_ms()));
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void on_remove(void *arg, enum sync_kind k, json_object *o)
{
	struct rec *r = arg;
	const char *name = sync_meta_str(o, "name");

	pthread_mutex_lock(&r->mu);
	json_object_object_del(r->objs[k], name);
	json_object_object_add(r->removed, name, json_object_new_boolean(1));
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void on_synced(void *arg, enum sync_kind k)
{
	struct rec *r = arg;

	pthread_mutex_lock(&r->mu);
	r->synced[k]++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void on_online(void *arg, bool up)
{
	struct rec *r = arg;

	pthread_mutex_lock(&r->mu);
	if (up)
		r->ups++;
	else
		r->downs++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void on_replayed(void *arg, enum sync_kind k, const char *name,
			const char *rv)
{
	struct rec *r = arg;

	pthread_mutex_lock(&r->mu);
	if (k == SYNC_VM)
		snprintf(r->replayed, sizeof(r->replayed), "%s@%s", name, rv);
	r->nreplayed++;
	pthread_mutex_unlock(&r->mu);
}

static const struct sync_handler handler = {
	on_upsert, on_remove, on_synced, on_online, on_replayed,
};

static void rec_init(struct rec *r)
{
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	for (int k = 0; k < SYNC_KIND_COUNT; k++)
		r->objs[k] = json_object_new_object();
	r->removed = json_object_new_object();
	r->first_seen = json_object_new_object();
}

static void rec_free(struct rec *r)
{
	for (int k = 0; k < SYNC_KIND_COUNT; k++)
		json_object_put(r->objs[k]);
	json_object_put(r->removed);
	json_object_put(r->first_seen);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
}

bool wait_for(pred_fn pred, const void *arg, long ms)
{
	struct timespec dl;
	struct rec *r = &C.rec;
	bool yes;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->mu);
	while (!(yes = pred(r, arg)))
		if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) == ETIMEDOUT)
			break;
	yes = yes || pred(r, arg);
	pthread_mutex_unlock(&r->mu);
	return yes;
}

bool p_has(struct rec *r, const void *name)
{
	return json_object_object_get_ex(r->objs[SYNC_VM], name, NULL);
}

bool p_gone(struct rec *r, const void *name)
{
	return !p_has(r, name) &&
	       json_object_object_get_ex(r->removed, name, NULL);
}

bool p_all_synced(struct rec *r, const void *min)
{
	for (int k = 0; k < SYNC_KIND_COUNT; k++)
		if (r->synced[k] < *(const unsigned *)min)
			return false;
	return true;
}

bool p_downs(struct rec *r, const void *n)
{
	return r->downs >= *(const unsigned *)n;
}

bool p_ups(struct rec *r, const void *n)
{
	return r->ups >= *(const unsigned *)n;
}

bool p_cpus(struct rec *r, const void *arg)
{
	const struct cpus_is *c = arg;
	json_object *o, *spec, *v;

	return json_object_object_get_ex(r->objs[SYNC_VM], c->name, &o) &&
	       json_object_object_get_ex(o, "spec", &spec) &&
	       json_object_object_get_ex(spec, "cpus", &v) &&
	       json_object_get_int(v) == c->cpus;
}

double seen_at(const char *name)
{
	json_object *v;
	double t = -1;

	pthread_mutex_lock(&C.rec.mu);
	if (json_object_object_get_ex(C.rec.first_seen, name, &v))
		t = json_object_get_double(v);
	pthread_mutex_unlock(&C.rec.mu);
	return t;
}

unsigned synced_vm(void)
{
	unsigned n;

	pthread_mutex_lock(&C.rec.mu);
	n = C.rec.synced[SYNC_VM];
	pthread_mutex_unlock(&C.rec.mu);
	return n;
}

/* ---- kubectl and the hook ------------------------------------------------ */

int kubectl(char *out, size_t outlen, ...)
{
	char *argv[24] = { "kubectl", "--kubeconfig", C.kubeconfig,
			   "--cache-dir", C.kcache };
	int n = 5;
	va_list ap;

	va_start(ap, outlen);
	while (n < 23 && (argv[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return run(argv, out, outlen);
}

const char *jp(const char *obj, const char *path)
{
	static char out[4096];
	char expr[256];

	snprintf(expr, sizeof(expr), "jsonpath=%s", path);
	if (kubectl(out, sizeof(out), "get", obj, "-o", expr, NULL) != 0)
		diag("kubectl get %s: %s", obj, out);
	return out;
}

/* kubectl create -f of a VM with the given spec lines. */
int kubectl_vm(const char *name, int cpus)
{
	char out[1024];
	FILE *f = fopen(C.tmp, "w");
	int r;

	if (!f)
		return -1;
	fprintf(f, "apiVersion: hypersdk.io/v1alpha1\nkind: VirtualMachine\n"
		"metadata:\n  name: %s\nspec:\n  cpus: %d\n", name, cpus);
	fclose(f);
	r = kubectl(out, sizeof(out), "create", "-f", C.tmp, NULL);
	if (r != 0)
		diag("kubectl create %s: %s", name, out);
	return r;
}

int hook(const char *what)
{
	char out[4096];
	char *argv[] = { (char *)C.hook, (char *)what, (char *)C.dir, NULL };
	int r = run(argv, out, sizeof(out));

	if (r != 0)
		diag("%s %s: %s", C.hook, what, out);
	return r;
}

json_object *J(const char *s)
{
	return json_tokener_parse(s);
}

int vm_create(struct sync *s, const char *name, int cpus,
		     json_object **created, char *err)
{
	char txt[256];
	json_object *o;
	int r;

	snprintf(txt, sizeof(txt), "{\"metadata\":{\"name\":\"%s\"},"
		 "\"spec\":{\"cpus\":%d}}", name, cpus);
	o = J(txt);
	r = sync_create(s, SYNC_VM, o, created, err, ERRLEN);
	json_object_put(o);
	return r;
}

int open_client_w(const struct sync_creds *cr, const char *node,
		  const char *state, int watch_seconds, struct sync **out,
		  char *err)
{
	char dir[600];
	struct sync_config cfg = {
		.creds = cr, .node = node, .state_dir = dir,
		.lease_seconds = 3, .watch_seconds = watch_seconds,
	};

	snprintf(dir, sizeof(dir), "%s/%s", C.work, state);
	return sync_open(&cfg, &handler, &C.rec, out, err, ERRLEN);
}

int open_client(const struct sync_creds *cr, const char *node,
		const char *state, struct sync **out, char *err)
{
	return open_client_w(cr, node, state, 0, out, err);
}

static int read_env_port(void)
{
	char path[600], *txt = NULL, *p;
	int port = 0;

	snprintf(path, sizeof(path), "%s/env", C.dir);
	if (sync_read_file(path, 65536, &txt, NULL) == 0 &&
	    (p = strstr(txt, "APISERVER_PORT=")))
		port = atoi(p + strlen("APISERVER_PORT="));
	free(txt);
	return port;
}

static int setup(int argc, char **argv)
{
	char err[ERRLEN] = "";

	if (argc != 6) {
		fprintf(stderr, "usage: %s FIRST CLUSTER_DIR HOOK CRD_DIR "
			"WORK\n", argv[0]);
		return -1;
	}
	/* Die with sync.sh, even when it is killed with SIGKILL. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	C.n = atoi(argv[1]);
	C.dir = argv[2];
	C.hook = argv[3];
	C.crds = argv[4];
	C.work = argv[5];
	snprintf(C.kubeconfig, sizeof(C.kubeconfig), "%s/kubeconfig", C.dir);
	snprintf(C.kcache, sizeof(C.kcache), "%s/kube-cache", C.work);
	snprintf(C.tmp, sizeof(C.tmp), "%s/obj.yaml", C.work);
	C.api_port = read_env_port();
	rec_init(&C.rec);
	if (!ok(sync_kubeconfig_load(C.kubeconfig, NULL, &C.creds, err,
				     sizeof(err)) == 0 && C.api_port > 0,
		"the cluster's kubeconfig loads (%s)", err))
		return -1;
	if (proxy_start(C.api_port, &C.px) < 0)
		return -1;
	sync_creds_copy(&C.creds, &C.creds_px);
	free(C.creds_px.server);
	if (asprintf(&C.creds_px.server, "https://127.0.0.1:%d",
		     proxy_port(C.px)) < 0)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	char path[600];
	int first = argc > 1 ? atoi(argv[1]) : 1;
	FILE *f;

	if (setup(argc, argv) == 0) {
		t_open_errors();
		if (t_crds() && t_start()) {
			t_latency();
			t_patch();
			t_errors();
			t_claim();
			t_lease();
			t_cut();
			t_busy();
			t_relist();
			t_outage();
			t_restart_client();
			t_dead();
			t_incluster();
		}
	}
	sync_close(C.a);
	if (C.px)
		proxy_stop(C.px);
	sync_creds_free(&C.creds);
	sync_creds_free(&C.creds_px);
	rec_free(&C.rec);
	snprintf(path, sizeof(path), "%s/smoke.result", argc > 5 ? argv[5] :
		 ".");
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%d %d\n", C.n - first, C.failed);
		fclose(f);
	}
	return C.failed ? 1 : 0;
}
