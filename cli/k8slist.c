/* hyperctl k8s: the read-only ops.  One GET of the collection with the
 * kubeconfig kubectl uses (sync_kubeconfig_load and sync_list, so TLS and
 * credentials behave as in the daemon), printed as a table with
 * kubectl's columns for the kind (the CRDs' additionalPrinterColumns). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/core.h"
#include "sync/sync.h"

#define MAX_COLS 6

struct col {
	const char *title;
	const char *path;       /* dotted path below the object; "" = age */
};

struct table {
	enum sync_kind kind;
	struct col cols[MAX_COLS];
	int ncols;
};

static const struct table tables[] = {
	{ SYNC_VM, { { "NAME", "metadata.name" },
		{ "PHASE", "status.phase" }, { "CPUS", "spec.cpus" },
		{ "MEMORY", "spec.memory" }, { "NODE", "status.nodeName" },
		{ "AGE", "" } }, 6 },
	{ SYNC_SNAPSHOT, { { "NAME", "metadata.name" },
		{ "VM", "spec.vmRef.name" }, { "PHASE", "status.phase" },
		{ "SIZE", "status.size" }, { "AGE", "" } }, 5 },
	{ SYNC_TEMPLATE, { { "NAME", "metadata.name" },
		{ "DISPLAY NAME", "spec.displayName" },
		{ "VERSION", "spec.version" }, { "USAGE", "status.usageCount" },
		{ "AGE", "" } }, 5 },
};

/* kubectl's HumanDuration, so that AGE reads the same in both tools. */
static void human_age(double secs, char *buf, size_t len)
{
	long s = secs < 0 ? 0 : (long)secs;
	long m = s / 60, h = s / 3600, d = s / 86400, y = d / 365;

	if (s < 120)
		snprintf(buf, len, "%lds", s);
	else if (m < 10)
		snprintf(buf, len, "%ldm%lds", m, s % 60);
	else if (m < 180)
		snprintf(buf, len, "%ldm", m);
	else if (h < 8)
		snprintf(buf, len, "%ldh%ldm", h, m % 60);
	else if (h < 48)
		snprintf(buf, len, "%ldh", h);
	else if (h < 24 * 8)
		snprintf(buf, len, "%ldd%ldh", d, h % 24);
	else if (h < 24 * 365 * 2)
		snprintf(buf, len, "%ldd", d);
	else if (y < 8)
		snprintf(buf, len, "%ldy%ldd", y, d % 365);
	else
		snprintf(buf, len, "%ldy", y);
}

/* One cell as text; "" when the field is absent, as kubectl shows it. */
static void cell(json_object *item, const struct col *c, char *buf,
		 size_t len)
{
	char path[64], *save = NULL, *k;
	json_object *o = item;
	time_t t;

	buf[0] = '\0';
	if (!*c->path) {
		/* The API server writes creationTimestamp in UTC, whole
		 * seconds: core's parser is exact for it. */
		o = core_json_path(item, "metadata.creationTimestamp");
		if (json_object_is_type(o, json_type_string) &&
		    core_rfc3339_parse(json_object_get_string(o), &t) == 0)
			human_age(difftime(time(NULL), t), buf, len);
		return;
	}
	snprintf(path, sizeof(path), "%s", c->path);
	for (k = strtok_r(path, ".", &save); k && o;
	     k = strtok_r(NULL, ".", &save))
		if (!json_object_object_get_ex(o, k, &o))
			o = NULL;
	if (o && !json_object_is_type(o, json_type_object))
		snprintf(buf, len, "%s", json_object_get_string(o));
}

static bool wanted(json_object *item, const char *vm)
{
	json_object *spec, *ref, *name;

	if (!vm)
		return true;
	return json_object_object_get_ex(item, "spec", &spec) &&
	       json_object_object_get_ex(spec, "vmRef", &ref) &&
	       json_object_object_get_ex(ref, "name", &name) &&
	       !strcmp(json_object_get_string(name), vm);
}

static void put(const char *s, size_t w, bool last)
{
	if (last)
		printf("%s\n", s);
	else
		printf("%-*s   ", (int)w, s);
}

/* Column widths first, then the rows: kubectl pads every column but the
 * last to its widest cell plus three spaces. */
static void print_table(const struct table *tb, json_object *items,
			const char *vm)
{
	size_t n = json_object_array_length(items), w[MAX_COLS];
	char buf[256];

	for (int c = 0; c < tb->ncols; c++)
		w[c] = strlen(tb->cols[c].title);
	for (size_t i = 0; i < n; i++) {
		json_object *it = json_object_array_get_idx(items, i);

		for (int c = 0; c < tb->ncols && wanted(it, vm); c++) {
			cell(it, &tb->cols[c], buf, sizeof(buf));
			if (strlen(buf) > w[c])
				w[c] = strlen(buf);
		}
	}
	for (int c = 0; c < tb->ncols; c++)
		put(tb->cols[c].title, w[c], c + 1 == tb->ncols);
	for (size_t i = 0; i < n; i++) {
		json_object *it = json_object_array_get_idx(items, i);

		for (int c = 0; c < tb->ncols && wanted(it, vm); c++) {
			cell(it, &tb->cols[c], buf, sizeof(buf));
			put(buf, w[c], c + 1 == tb->ncols);
		}
	}
}

static size_t count(json_object *items, const char *vm)
{
	size_t k = 0;

	for (size_t i = 0; i < json_object_array_length(items); i++)
		k += wanted(json_object_array_get_idx(items, i), vm);
	return k;
}

static const struct table *table_for(const char *op)
{
	if (!strcmp(op, "vm-list"))
		return &tables[0];
	if (!strcmp(op, "vm-snapshot-list"))
		return &tables[1];
	return &tables[2];
}

int cli_k8s_list(const char *op, const char *kubeconfig, const char *ns,
		 const char *vm)
{
	const struct table *tb = table_for(op);
	struct sync_creds cr = { 0 };
	json_object *list = NULL, *items;
	char err[CORE_ERR_MAX] = "";
	int rc = CLI_EXIT_FAIL;

	if (sync_kubeconfig_load(kubeconfig, NULL, &cr, err, sizeof(err)) < 0) {
		cli_err("kubeconfig: %s", err);
		goto out;
	}
	if (!ns)
		ns = cr.ns ? cr.ns : "default";
	if (sync_list(&cr, tb->kind, ns, &list, err, sizeof(err)) < 0) {
		cli_err("%s: %s", sync_kind_plural(tb->kind), err);
		goto out;
	}
	json_object_object_get_ex(list, "items", &items);
	rc = 0;
	if (count(items, vm) == 0)
		fprintf(stderr, "No resources found in %s namespace.\n", ns);
	else
		print_table(tb, items, vm);
out:
	json_object_put(list);
	sync_creds_free(&cr);
	return rc;
}
