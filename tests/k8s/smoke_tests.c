/* The tests of sync_smoke, in the order main() runs them; each leaves the
 * cluster as the next expects (see sync_smoke.c). */
#include "smoke.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LAT_N 20

static struct sync_creds altered(const char *server, const char *ca_pem,
				 bool no_cert, bool insecure)
{
	struct sync_creds c;

	sync_creds_copy(&C.creds, &c);
	if (server) {
		free(c.server);
		c.server = strdup(server);
	}
	if (ca_pem) {
		free(c.ca_pem);
		c.ca_pem = strdup(ca_pem);
	}
	if (no_cert) {
		free(c.cert_pem);
		free(c.key_pem);
		c.cert_pem = c.key_pem = NULL;
	}
	c.insecure = insecure;
	return c;
}

static int open_with(struct sync_creds c, char *err)
{
	struct sync *s = NULL;
	int r = open_client(&c, NODE_A, "state-x", &s, err);

	sync_close(s);
	sync_creds_free(&c);
	return r;
}

void t_open_errors(void)
{
	char err[ERRLEN] = "";
	int r;

	r = open_with(altered(NULL, NULL, false, false), err);
	ok(r == -ENOENT && strstr(err, "CRD virtualmachines.hypersdk.io is "
				  "not installed"),
	   "sync_open before the CRDs exist: %s", err);
	{
		/* A node starts while the API server is away: offline, not
		 * refused; its watches connect later. */
		struct sync_creds c = altered("https://127.0.0.1:1", NULL,
					      false, false);
		struct sync *s = NULL;

		r = open_client(&c, NODE_A, "state-x", &s, err);
		ok(r == 0 && s && !sync_online(s),
		   "sync_open of a server that does not answer: offline (%s)",
		   err);
		sync_close(s);
		sync_creds_free(&c);
	}
	r = open_with(altered(NULL, C.creds.cert_pem, false, false), err);
	ok(r == -EIO && strstr(err, "certificate"),
	   "TLS verification is on: a CA that did not sign the server: %s",
	   err);
	unsetenv("HYPERSDK_ALLOW_INSECURE");
	r = open_with(altered(NULL, NULL, false, true), err);
	ok(r == -EACCES && strstr(err, "insecure-skip-tls-verify is refused"),
	   "insecure-skip-tls-verify is refused by default: %s", err);
}

bool t_crds(void)
{
	char out[4096], err[ERRLEN] = "";
	int r;

	r = kubectl(out, sizeof(out), "apply", "-f", C.crds, NULL);
	if (!ok(r == 0, "kubectl apply -f deploy/crds/"))
		diag("%s", out);
	r = kubectl(out, sizeof(out), "wait", "--for", "condition=established",
		    "crd", "--all", "--timeout=60s", NULL);
	if (!ok(r == 0, "the CRDs are established"))
		return false;
	r = open_with(altered(NULL, NULL, true, false), err);
	ok(r == -EACCES && strstr(err, "credentials refused"),
	   "sync_open without credentials (anonymous): %s", err);
	return true;
}

bool t_start(void)
{
	char err[ERRLEN] = "";
	unsigned one = 1;
	int r = -ENOENT;

	/* Discovery may lag the CRDs' Established condition a little. */
	for (int i = 0; i < 100 && r == -ENOENT; i++) {
		r = open_client(&C.creds_px, NODE_A, "state-a", &C.a, err);
		if (r == -ENOENT)
			sleep_ms(100);
	}
	if (!ok(r == 0, "sync_open through the proxy: %s", err))
		return false;
	if (!ok(sync_start(C.a) == 0, "sync_start"))
		return false;
	return ok(wait_for(p_all_synced, &one, 10000),
		  "the initial list of all four kinds completes (synced)");
}

struct kind_name {
	enum sync_kind k;
	const char *name;
};

static bool p_has_kind(struct rec *r, const void *arg)
{
	const struct kind_name *kn = arg;

	return json_object_object_get_ex(r->objs[kn->k], kn->name, NULL);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The object exists between the request being sent (t0) and the answer
 * (t1): its latency to the upsert lies between the two measures. */
static void latency_api(void)
{
	char err[ERRLEN] = "", name[32];
	double sent[LAT_N], done[LAT_N], t0, t1;
	bool all = true;

	for (int i = 0; i < LAT_N; i++) {
		snprintf(name, sizeof(name), "lat-%d", i);
		t0 = now_ms();
		all &= vm_create(C.a, name, 1, NULL, err) == 0;
		t1 = now_ms();
		all &= wait_for(p_has, name, 5000);
		sent[i] = seen_at(name) - t0;
		done[i] = seen_at(name) - t1;
	}
	qsort(sent, LAT_N, sizeof(sent[0]), cmp_double);
	qsort(done, LAT_N, sizeof(done[0]), cmp_double);
	ok(all && done[LAT_N - 1] < 100, "%d VMs created with sync_create: "
	   "each upserted by the watch within 100 ms of its creation (after "
	   "the create returned: median %+.1f ms, max %+.1f ms; after it was "
	   "sent: median %.1f ms, max %.1f ms)", LAT_N, done[LAT_N / 2],
	   done[LAT_N - 1], sent[LAT_N / 2], sent[LAT_N - 1]);
}

void t_latency(void)
{
	struct kind_name op = { SYNC_OPERATION, "op1" };
	char out[1024], err[ERRLEN] = "";
	double t0, t1, t2;
	json_object *o;

	t0 = now_ms();
	kubectl_vm("w1", 1);
	t1 = now_ms();
	wait_for(p_has, "w1", 5000);
	t2 = seen_at("w1");
	ok(t2 >= 0 && t2 - t1 <= 100, "a VM created with kubectl is upserted "
	   "within 100 ms of kubectl returning (%+.1f ms; %.1f ms after "
	   "kubectl started)", t2 - t1, t2 - t0);
	latency_api();
	kubectl(out, sizeof(out), "delete", "vm", "w1", NULL);
	ok(wait_for(p_gone, "w1", 3000),
	   "a VM deleted with kubectl is remove()d");
	o = J("{\"metadata\":{\"name\":\"op1\"},\"spec\":{\"vmRef\":{\"name\":"
	      "\"lat-0\"},\"operation\":\"start\"}}");
	ok(sync_create(C.a, SYNC_OPERATION, o, NULL, err, sizeof(err)) == 0 &&
	   wait_for(p_has_kind, &op, 3000),
	   "a VMOperation created through sync comes back on its watch %s",
	   err);
	json_object_put(o);
}

static int patch_status_on(struct sync *s, const char *name,
			   const char *json, char *err)
{
	json_object *p = J(json);
	int r = sync_patch_status(s, SYNC_VM, name, p, err, ERRLEN);

	json_object_put(p);
	return r;
}

static int patch_status(const char *name, const char *json, char *err)
{
	return patch_status_on(C.a, name, json, err);
}

static int patch_spec(const char *name, const char *json, char *err)
{
	json_object *p = J(json);
	int r = sync_patch(C.a, SYNC_VM, name, p, err, ERRLEN);

	json_object_put(p);
	return r;
}

void t_patch(void)
{
	struct cpus_is three = { "lat-0", 3 };
	char err[ERRLEN] = "";
	json_object *o = NULL, *v;

	ok(patch_spec("lat-0", "{\"spec\":{\"cpus\":3}}", err) == 0,
	   "sync_patch of spec.cpus %s", err);
	ok(strcmp(jp("vm/lat-0", "{.spec.cpus}"), "3") == 0,
	   "kubectl reads spec.cpus 3 back");
	ok(wait_for(p_cpus, &three, 3000), "the change comes back on the watch");
	ok(patch_status("lat-0", "{\"phase\":\"Running\",\"nodeName\":\"n1\","
			"\"extra\":{\"x\":1}}", err) == 0,
	   "sync_patch_status %s", err);
	ok(strcmp(jp("vm/lat-0", "{.status.phase} {.status.nodeName} "
		      "{.status.extra.x} {.spec.cpus}"), "Running n1 1 3") == 0,
	   "kubectl reads the status back, spec untouched");
	ok(patch_status("lat-0", "{\"extra\":null}", err) == 0 &&
	   strcmp(jp("vm/lat-0", "{.status.extra}|{.status.phase}"),
		  "|Running") == 0, "a null in a status patch removes the field");
	ok(sync_get(C.a, SYNC_VM, "lat-0", &o, err, sizeof(err)) == 0 &&
	   json_object_object_get_ex(o, "status", &v) &&
	   strcmp(json_object_get_string(json_object_object_get(v, "phase")),
		  "Running") == 0, "sync_get returns the object with status");
	json_object_put(o);
	/* hyperctl's read: the credentials alone, no client. */
	o = NULL;
	ok(sync_list(&C.creds, SYNC_VM, NULL, &o, err, sizeof(err)) == 0 &&
	   json_object_object_get_ex(o, "items", &v) &&
	   json_object_array_length(v) >= LAT_N,
	   "sync_list lists the VMs without a client (%s)", err);
	json_object_put(o);
}

void t_errors(void)
{
	char err[ERRLEN] = "";
	int r;

	r = patch_spec("nope", "{\"spec\":{\"cpus\":2}}", err);
	ok(r == -ENOENT && strstr(err, "not found"), "patch of a missing VM: "
	   "-ENOENT (%s)", err);
	r = vm_create(C.a, "lat-0", 1, NULL, err);
	ok(r == -EEXIST, "create of an existing name: -EEXIST (%s)", err);
	r = vm_create(C.a, "badcpus", 0, NULL, err);
	ok(r == -EINVAL && strstr(err, "spec.cpus"), "create refused by the "
	   "CRD schema: -EINVAL with the server's message (%s)", err);
	r = patch_status("lat-0", "{\"phase\":\"Exploded\"}", err);
	ok(r == -EINVAL && strstr(err, "status.phase"), "status refused by the "
	   "schema: -EINVAL (%s)", err);
	r = patch_spec("../x", "{}", err);
	ok(r == -EINVAL, "a name that is no Kubernetes name: -EINVAL (%s)", err);
	r = sync_delete(C.a, SYNC_VM, "nope", err, sizeof(err));
	ok(r == -ENOENT, "delete of a missing VM: -ENOENT (%s)", err);
	{
		struct sync_creds c = altered("https://127.0.0.1:1/", NULL,
					      false, false);
		json_object *o = NULL;

		r = sync_list(&c, SYNC_VM, NULL, &o, err, sizeof(err));
		ok(r == -EHOSTUNREACH && !o &&
		   strstr(err, "https://127.0.0.1:1 is unreachable"),
		   "sync_list from a server that does not answer: "
		   "-EHOSTUNREACH (%s)", err);
		r = sync_list(&C.creds, SYNC_VM, "a.b", &o, err, sizeof(err));
		ok(r == -EINVAL && !o, "sync_list in a namespace that is no "
		   "DNS label: -EINVAL (%s)", err);
		sync_creds_free(&c);
	}
	ok(sync_outbox_len(C.a) == 0, "errors are not queued in the outbox");
}

struct claimer {
	struct sync *s;
	const char *rv;
	pthread_barrier_t *b;
	int r;
	char err[ERRLEN];
};

static void *claim_th(void *arg)
{
	struct claimer *c = arg;

	pthread_barrier_wait(c->b);
	c->r = sync_claim(c->s, SYNC_VM, "claimme", c->rv, c->err, ERRLEN);
	return NULL;
}

static void claim_race(struct sync *b, const char *rv)
{
	pthread_barrier_t bar;
	struct claimer c[2] = { { C.a, rv, &bar, 0, "" },
				{ b, rv, &bar, 0, "" } };
	pthread_t th[2];
	int win;

	pthread_barrier_init(&bar, NULL, 2);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, claim_th, &c[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	win = c[0].r == 0 ? 0 : 1;
	ok((c[0].r == 0 && c[1].r == -EBUSY) || (c[1].r == 0 &&
						 c[0].r == -EBUSY),
	   "two nodes claim with the same resourceVersion: exactly one wins "
	   "(%s: %d, %s: %d %s)", NODE_A, c[0].r, NODE_B, c[1].r,
	   c[1 - win].err);
	ok(strcmp(jp("vm/claimme", "{.status.nodeName}"),
		  win ? NODE_B : NODE_A) == 0,
	   "status.nodeName is the winner's");
}

void t_claim(void)
{
	char err[ERRLEN] = "", rv[64] = "";
	json_object *o = NULL;
	struct sync *b = NULL;

	if (!ok(open_client(&C.creds, NODE_B, "state-b", &b, err) == 0 &&
		vm_create(C.a, "claimme", 1, &o, err) == 0, "a second node "
		"and a VM to claim %s", err))
		goto out;
	snprintf(rv, sizeof(rv), "%s", sync_meta_str(o, "resourceVersion"));
	claim_race(b, rv);
	ok(sync_claim(C.a, SYNC_VM, "claimme", rv, err, sizeof(err)) == -EBUSY,
	   "a claim with a stale resourceVersion: -EBUSY (%s)", err);
	json_object_put(o);
	o = NULL;
	err[0] = '\0';
	ok(sync_get(C.a, SYNC_VM, "claimme", &o, err, sizeof(err)) == 0 &&
	   sync_claim(C.a, SYNC_VM, "claimme", sync_meta_str(o,
		      "resourceVersion"), err, sizeof(err)) == 0 &&
	   strcmp(jp("vm/claimme", "{.status.nodeName}"), NODE_A) == 0,
	   "re-read and claim again: wins %s", err);
out:
	json_object_put(o);
	sync_close(b);
}

struct nodes_seen {
	int n1, old, other;
};

static void node_cb(void *arg, const char *node, const char *renew,
		    bool alive)
{
	struct nodes_seen *s = arg;

	if (strcmp(node, NODE_A) == 0)
		s->n1 = alive ? 1 : -1;
	else if (strcmp(node, "old") == 0)
		s->old = alive ? 1 : -1;
	else if (strcmp(node, "unlabelled") == 0)
		s->other = 1;
}

static void make_leases(void)
{
	char out[1024];
	FILE *f = fopen(C.tmp, "w");

	if (!f)
		return;
	fprintf(f, "apiVersion: coordination.k8s.io/v1\nkind: Lease\n"
		"metadata:\n  name: hypersdk-node-old\n  labels:\n"
		"    hypersdk.io/node: \"true\"\nspec:\n  holderIdentity: old\n"
		"  leaseDurationSeconds: 15\n"
		"  renewTime: \"2020-01-01T00:00:00.000000Z\"\n---\n"
		"apiVersion: coordination.k8s.io/v1\nkind: Lease\n"
		"metadata:\n  name: unlabelled\nspec:\n"
		"  holderIdentity: unlabelled\n  leaseDurationSeconds: 15\n");
	fclose(f);
	if (kubectl(out, sizeof(out), "create", "-f", C.tmp, NULL) != 0)
		diag("kubectl create leases: %s", out);
}

void t_lease(void)
{
	const char *lease = "lease/hypersdk-node-" NODE_A;
	char r1[64], err[ERRLEN] = "";
	struct nodes_seen seen = { 0 };
	const char *r2;
	int r;

	ok(strcmp(jp(lease, "{.spec.holderIdentity} "
		     "{.metadata.labels.hypersdk\\.io/node} "
		     "{.spec.leaseDurationSeconds}"), NODE_A " true 3") == 0,
	   "Lease hypersdk-node-n1: holder n1, labelled, 3 s");
	snprintf(r1, sizeof(r1), "%s", jp(lease, "{.spec.renewTime}"));
	ok(strlen(r1) == 27 && r1[19] == '.' && r1[26] == 'Z',
	   "renewTime is a MicroTime: %s", r1);
	sleep_ms(1600);
	r2 = jp(lease, "{.spec.renewTime}");
	ok(strcmp(r1, r2) != 0, "renewed every lease/3 (%s -> %s)", r1, r2);
	make_leases();
	r = sync_nodes(C.a, node_cb, &seen, err, sizeof(err));
	ok(r == 0 && seen.n1 == 1 && seen.old == -1 && seen.other == 0,
	   "sync_nodes: n1 alive, a lease renewed in 2020 dead, an unlabelled "
	   "lease not a node (%d %d %d) %s", seen.n1, seen.old, seen.other,
	   err);
}

void t_cut(void)
{
	unsigned before = synced_vm();
	double t1;
	bool seen;

	proxy_accepted(C.px, true);
	proxy_cut(C.px);
	kubectl_vm("after-cut", 1);
	t1 = now_ms();
	seen = wait_for(p_has, "after-cut", 5000);
	ok(seen, "after the watch streams were "
	   "cut, a new VM is seen (%.0f ms after kubectl returned)",
	   seen_at("after-cut") - t1);
	ok(synced_vm() == before, "... without a relist: the watch resumed "
	   "from its resourceVersion");
	diag("%u connections after the cut", proxy_accepted(C.px, false));
}

void t_busy(void)
{
	unsigned downs, ups, n;
	double t1;
	bool seen;

	pthread_mutex_lock(&C.rec.mu);
	downs = C.rec.downs + 1;
	ups = C.rec.ups + 1;
	pthread_mutex_unlock(&C.rec.mu);
	proxy_refuse(C.px, true);
	proxy_cut(C.px);
	proxy_accepted(C.px, true);
	sleep_ms(5000);
	n = proxy_accepted(C.px, true);
	ok(n >= 4 && n <= 100, "the server refusing for 5 s: %u connection "
	   "attempts by 4 watches and the lease (backoff, no busy loop)", n);
	ok(wait_for(p_downs, &downs, 1000), "online(false) was reported");
	proxy_refuse(C.px, false);
	kubectl_vm("after-refuse", 1);
	t1 = now_ms();
	seen = wait_for(p_has, "after-refuse", 15000);
	ok(seen, "when it answers again the "
	   "watch is back (a new VM seen %.1f s after kubectl returned)",
	   (seen_at("after-refuse") - t1) / 1000);
	ok(wait_for(p_ups, &ups, 5000), "online(true) was reported");
}

static bool p_synced_vm(struct rec *r, const void *n)
{
	return r->synced[SYNC_VM] >= *(const unsigned *)n;
}

static bool same_names(void)
{
	char names[8192], mine[8192] = "", *save = NULL;
	int n = 0, m = 0;
	bool all = true;

	snprintf(names, sizeof(names), "%s", jp("vm",
		 "{.items[*].metadata.name}"));
	pthread_mutex_lock(&C.rec.mu);
	for (char *t = strtok_r(names, " ", &save); t;
	     t = strtok_r(NULL, " ", &save), n++)
		all &= json_object_object_get_ex(C.rec.objs[SYNC_VM], t, NULL);
	json_object_object_foreach(C.rec.objs[SYNC_VM], k, v) {
		(void)v;
		m++;
		snprintf(mine + strlen(mine), sizeof(mine) - strlen(mine),
			 " %s", k);
	}
	pthread_mutex_unlock(&C.rec.mu);
	if (!all || n != m)
		diag("server has %d VMs, the handler %d:%s", n, m, mine);
	return all && n == m;
}

void t_relist(void)
{
	struct cpus_is seven = { "lat-2", 7 };
	unsigned before = synced_vm();
	char out[1024];
	bool relisted;

	proxy_refuse(C.px, true);
	proxy_cut(C.px);
	kubectl_vm("r-new", 1);
	kubectl(out, sizeof(out), "delete", "vm", "lat-1", NULL);
	kubectl(out, sizeof(out), "patch", "vm", "lat-2", "--type=merge", "-p",
		"{\"spec\":{\"cpus\":7}}", NULL);
	/* A restarted API server has a new watch cache: our resourceVersion
	 * is then older than anything it can replay (410 Expired). */
	ok(hook("apiserver-stop") == 0 && hook("apiserver-start") == 0,
	   "kube-apiserver restarted while the client was cut off");
	proxy_refuse(C.px, false);
	ok(wait_for(p_has, "r-new", 30000) && wait_for(p_gone, "lat-1", 1000) &&
	   wait_for(p_cpus, &seven, 1000), "after the relist: the new VM "
	   "upserted, the deleted one remove()d, the changed one updated");
	before++;
	relisted = wait_for(p_synced_vm, &before, 2000);
	ok(relisted, "the VM watch relisted and said synced() again (%u "
	   "times now)", synced_vm());
	ok(same_names(), "no object lost: the handler has exactly the VMs of "
	   "kubectl get vm");
}

static int outbox_files(const char *state)
{
	char path[600];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s/outbox", C.work, state);
	d = opendir(path);
	while (d && (de = readdir(d)))
		n += strlen(de->d_name) == 25 && strstr(de->d_name, ".json");
	if (d)
		closedir(d);
	return n;
}

static bool outbox_drains(struct sync *s, long ms, double *took)
{
	double t0 = now_ms();

	while (sync_outbox_len(s) > 0 && now_ms() - t0 < ms)
		sleep_ms(50);
	*took = (now_ms() - t0) / 1000;
	return sync_outbox_len(s) == 0;
}

static void outage_queue(void)
{
	char err[ERRLEN] = "", e1[ERRLEN] = "";
	int r[5];

	r[0] = patch_spec("lat-3", "{\"spec\":{\"cpus\":2}}", e1);
	r[1] = patch_spec("lat-3", "{\"spec\":{\"cpus\":4}}", err);
	r[2] = patch_status("lat-3", "{\"phase\":\"Paused\"}", err);
	r[3] = patch_status("lat-3", "{\"vnc\":{\"port\":5901}}", err);
	r[4] = patch_spec("ghost-vm", "{\"spec\":{\"cpus\":2}}", err);
	ok(r[0] == -EAGAIN && r[1] == -EAGAIN && r[2] == -EAGAIN &&
	   r[3] == -EAGAIN && r[4] == -EAGAIN, "with the API server down, "
	   "patches go to the outbox: -EAGAIN (%s)", e1);
	ok(sync_outbox_len(C.a) == 4, "... 4 entries: both spec patches, the "
	   "two status patches of lat-3 coalesced, the ghost's (%zu)",
	   sync_outbox_len(C.a));
	ok(outbox_files("state-a") == 4, "... one file each in the outbox "
	   "directory (%d)", outbox_files("state-a"));
	r[0] = vm_create(C.a, "during", 1, NULL, err);
	r[1] = sync_claim(C.a, SYNC_VM, "lat-3", "1", err, sizeof(err));
	ok(r[0] == -EHOSTUNREACH && r[1] == -EHOSTUNREACH, "create and claim "
	   "are not queued: -EHOSTUNREACH (%s)", err);
}

void t_outage(void)
{
	char gen[32], out[1024];
	unsigned ups, replays;
	double took = 0;

	snprintf(gen, sizeof(gen), "%s", jp("vm/lat-3", "{.metadata.generation}"));
	pthread_mutex_lock(&C.rec.mu);
	ups = C.rec.ups + 1;
	replays = C.rec.nreplayed;
	pthread_mutex_unlock(&C.rec.mu);
	if (!ok(hook("apiserver-stop") == 0, "kube-apiserver killed"))
		return;
	outage_queue();
	/* The client's own view, not a count of callbacks: when the last
	 * callback before the kill was already a "down" (a watch reset a
	 * moment earlier), no new one comes, and that is right. */
	for (int i = 0; i < 100 && sync_online(C.a); i++)
		sleep_ms(100);
	ok(!sync_online(C.a),
	   "online(false) was reported: the client knows the server is down");
	ok(hook("apiserver-start") == 0, "kube-apiserver started again");
	ok(outbox_drains(C.a, 30000, &took), "the outbox is pushed when the "
	   "server is back (%.1f s after it was ready)", took);
	ok(strcmp(jp("vm/lat-3", "{.spec.cpus} {.status.phase} "
		     "{.status.vnc.port}"), "4 Paused 5901") == 0,
	   "kubectl sees the queued spec (in order) and the coalesced status");
	ok(atoi(jp("vm/lat-3", "{.metadata.generation}")) == atoi(gen) + 2,
	   "each queued spec patch was applied exactly once (generation %s -> "
	   "%s)", gen, jp("vm/lat-3", "{.metadata.generation}"));
	ok(kubectl(out, sizeof(out), "get", "vm", "ghost-vm", NULL) != 0 &&
	   strstr(out, "NotFound"), "the ghost's patch was dropped on 404, "
	   "nothing created");
	ok(outbox_files("state-a") == 0, "the outbox directory is empty");
	ok(wait_for(p_ups, &ups, 5000), "online(true) was reported");
	pthread_mutex_lock(&C.rec.mu);
	snprintf(out, sizeof(out), "lat-3@%s",
		 jp("vm/lat-3", "{.metadata.resourceVersion}"));
	/* Two spec patches replayed (the ghost's was dropped): the last
	 * one's revision, or a later one if the status patch came after. */
	ok(C.rec.nreplayed - replays == 2 && !strncmp(C.rec.replayed, "lat-3@", 6) &&
	   strtoull(C.rec.replayed + 6, NULL, 10) <=
	   strtoull(out + 6, NULL, 10) && strtoull(C.rec.replayed + 6, NULL,
						     10) > 0,
	   "replayed() told each applied spec patch with its revision "
	   "(%u, %s; now %s)", C.rec.nreplayed - replays, C.rec.replayed,
	   out);
	pthread_mutex_unlock(&C.rec.mu);
}

void t_restart_client(void)
{
	char err[ERRLEN] = "";
	double took = 0;
	int r = -1;

	if (!ok(hook("apiserver-stop") == 0, "kube-apiserver killed again"))
		return;
	ok(patch_status("lat-4", "{\"phase\":\"Failed\"}", err) == -EAGAIN,
	   "a status patch queued (%s)", err);
	err[0] = '\0';
	sync_close(C.a);
	C.a = NULL;
	ok(hook("apiserver-start") == 0, "kube-apiserver started again");
	for (int i = 0; i < 100 && r != 0; i++) {
		r = open_client(&C.creds_px, NODE_A, "state-a", &C.a, err);
		if (r != 0)
			sleep_ms(200);
	}
	ok(r == 0 && sync_outbox_len(C.a) == 1, "a new client on the same "
	   "state directory finds the queued patch");
	ok(r == 0 && sync_start(C.a) == 0 && outbox_drains(C.a, 20000, &took),
	   "... and pushes it (%.1f s)", took);
	ok(strcmp(jp("vm/lat-4", "{.status.phase}"), "Failed") == 0,
	   "kubectl sees it");
}

/* A client whose watches end every 3 s (timeoutSeconds): they resume
 * without a relist, and a connection that goes silent is given up. */
void t_dead(void)
{
	char err[ERRLEN] = "";
	unsigned before;
	double t1;
	bool seen;
	int r;

	sync_close(C.a);
	C.a = NULL;
	r = open_client_w(&C.creds_px, NODE_A, "state-a", 3, &C.a, err);
	if (!ok(r == 0 && sync_start(C.a) == 0, "a client with 3 s watches "
		"%s", err))
		return;
	sleep_ms(1500);
	before = synced_vm();
	sleep_ms(7000);
	kubectl_vm("after-timeouts", 1);
	ok(wait_for(p_has, "after-timeouts", 2000) && synced_vm() == before,
	   "its watches ended twice and resumed without a relist (synced "
	   "%u -> %u)", before, synced_vm());
	proxy_freeze(C.px);
	kubectl_vm("after-freeze", 1);
	t1 = now_ms();
	seen = wait_for(p_has, "after-freeze", 20000);
	ok(seen && synced_vm() == before, "a connection gone silent is given "
	   "up and the watch resumes elsewhere (a new VM seen after %.1f s, "
	   "no relist)", (seen_at("after-freeze") - t1) / 1000);
	proxy_cut(C.px);
}

static const char rbac[] =
	"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n"
	"  name: hypersdk-node\n  namespace: default\n---\n"
	"apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n"
	"  name: hypersdk-node\n  namespace: default\nrules:\n"
	"- apiGroups: [hypersdk.io]\n"
	"  resources: [virtualmachines, vmoperations, vmtemplates, vmsnapshots,"
	" virtualmachines/status, vmoperations/status, vmtemplates/status,"
	" vmsnapshots/status]\n"
	"  verbs: [get, list, watch, create, patch, delete]\n"
	"- apiGroups: [coordination.k8s.io]\n  resources: [leases]\n"
	"  verbs: [get, list, create, patch]\n---\n"
	"apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n"
	"metadata:\n  name: hypersdk-node\n  namespace: default\n"
	"roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n"
	"  name: hypersdk-node\nsubjects:\n- kind: ServiceAccount\n"
	"  name: hypersdk-node\n  namespace: default\n";

static int write_file(const char *dir, const char *name, const char *text)
{
	char path[700];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

/* A fake service account directory with a real token of the cluster. */
static bool sa_dir(char *dir, size_t len)
{
	char out[8192], port[16], *ca = NULL, path[600];

	snprintf(dir, len, "%s/sa", C.work);
	mkdir(dir, 0700);
	if (write_file(C.work, "rbac.yaml", rbac) < 0)
		return false;
	snprintf(path, sizeof(path), "%s/rbac.yaml", C.work);
	if (kubectl(out, sizeof(out), "apply", "-f", path, NULL) != 0 ||
	    kubectl(out, sizeof(out), "create", "token", "hypersdk-node",
		    "--duration=1h", NULL) != 0) {
		diag("%s", out);
		return false;
	}
	snprintf(path, sizeof(path), "%s/pki/ca.crt", C.dir);
	if (sync_read_file(path, 1 << 20, &ca, NULL) < 0 ||
	    write_file(dir, "token", out) < 0 ||
	    write_file(dir, "ca.crt", ca) < 0 ||
	    write_file(dir, "namespace", "default\n") < 0) {
		free(ca);
		return false;
	}
	free(ca);
	snprintf(port, sizeof(port), "%d", C.api_port);
	setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", port, 1);
	setenv("HYPERSDK_SA_DIR", dir, 1);
	return true;
}

static void sa_client(struct sync *s)
{
	struct nodes_seen seen = { 0 };
	char err[ERRLEN] = "";
	unsigned want = ~0u;

	pthread_mutex_lock(&C.rec.mu);
	for (int k = 0; k < SYNC_KIND_COUNT; k++)
		if (C.rec.synced[k] + 1 < want)
			want = C.rec.synced[k] + 1;
	pthread_mutex_unlock(&C.rec.mu);
	ok(sync_start(s) == 0 && wait_for(p_all_synced, &want, 10000),
	   "... lists and watches all kinds with the service account's Role");
	ok(patch_status_on(s, "lat-0", "{\"phase\":\"Stopped\"}", err) == 0 &&
	   strcmp(jp("vm/lat-0", "{.status.phase}"), "Stopped") == 0,
	   "... patches status %s", err);
	ok(sync_nodes(s, node_cb, &seen, err, sizeof(err)) == 0 &&
	   seen.n1 == 1, "... reads the node leases %s", err);
	ok(strcmp(jp("lease/hypersdk-node-sa1", "{.spec.holderIdentity}"),
		  "sa1") == 0, "... and holds its own lease");
}

void t_incluster(void)
{
	struct sync_creds cr = { 0 };
	char err[ERRLEN] = "", dir[600];
	struct sync *s = NULL;
	double t0;

	if (!ok(sa_dir(dir, sizeof(dir)), "a ServiceAccount with a Role, "
		"its token and CA in a service account directory"))
		return;
	ok(sync_incluster_load(&cr, err, sizeof(err)) == 0 && cr.token_file &&
	   strcmp(cr.ns, "default") == 0, "sync_incluster_load %s", err);
	if (ok(open_client(&cr, "sa1", "state-sa", &s, err) == 0,
	       "sync_open with the in-cluster credentials %s", err))
		sa_client(s);
	t0 = now_ms();
	sync_close(s);
	ok(now_ms() - t0 < 2500, "sync_close with watch streams open returns "
	   "promptly (%.0f ms)", now_ms() - t0);
	sync_creds_free(&cr);
}
