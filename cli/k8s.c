/* hyperctl k8s: the seed's "-op" verbs.  Mutating ops print a manifest
 * for "kubectl apply -f -" (or "kubectl delete -f -" for the deletes), so
 * that kubectl keeps doing authentication, dry runs and diffs; read-only
 * ops ask the API server themselves (k8slist.c).  Every value is checked
 * here with core's parsers, so a manifest we print is one the CRDs take. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/core.h"
#include "sync/sync.h"

enum kind { K_VM, K_OP, K_SNAP, K_LIST };

struct op {
	const char *name;
	enum kind kind;
	const char *verb;       /* VMOperation spec.operation */
	const char *flags;      /* allowed besides op, namespace, kubeconfig */
};

static const struct op ops[] = {
	{ "vm-list", K_LIST, NULL, "" },
	{ "template-list", K_LIST, NULL, "" },
	{ "vm-snapshot-list", K_LIST, NULL, " vm " },
	{ "vm-create", K_VM, NULL, " vm cpus memory disk image template " },
	{ "vm-delete", K_VM, NULL, " vm " },
	{ "vm-snapshot-create", K_SNAP, NULL, " vm snapshot include-memory " },
	{ "vm-snapshot-delete", K_SNAP, NULL, " vm snapshot " },
};

enum { F_OP, F_VM, F_CPUS, F_MEMORY, F_DISK, F_IMAGE, F_TEMPLATE, F_TARGET,
       F_TARGET_NODE, F_SNAPSHOT, F_INCLUDE_MEMORY, F_NAMESPACE,
       F_KUBECONFIG, F_NAME, F_HELP, F_COUNT };

struct args {
	struct cli_flag f[F_COUNT];
	const struct op *op;
	int cpus;
	uint64_t memory, disk;
	char name[CORE_NAME_MAX + 1]; /* the object's metadata.name */
};

static const char *val(const struct args *a, int i)
{
	return a->f[i].value;
}

static int check_name(const char *flag, const char *v)
{
	char err[CORE_ERR_MAX];

	if (core_name_check(v, err, sizeof(err)) < 0) {
		cli_err("-%s: %s", flag, err);
		return -EINVAL;
	}
	return 0;
}

static int check_qty(const char *flag, const char *v, uint64_t *out)
{
	char err[CORE_ERR_MAX];

	if (core_qty_parse(v, out, err, sizeof(err)) < 0) {
		cli_err("-%s: %s", flag, err);
		return -EINVAL;
	}
	/* The daemon's own floor (docs/vms-ctl.md): refuse here, not later. */
	if (*out < 1024 * 1024) {
		cli_err("-%s: %s: must be at least 1Mi", flag, v);
		return -EINVAL;
	}
	return 0;
}

static int check_cpus(const char *v, int *out)
{
	size_t n = strspn(v, "0123456789");

	if (!*v || v[n] || n > 3) {
		cli_err("-cpus: \"%s\": must be a number from 1 to 512", v);
		return -EINVAL;
	}
	*out = atoi(v);
	if (*out < 1 || *out > 512) {
		cli_err("-cpus: %s: must be 1 to 512", v);
		return -EINVAL;
	}
	return 0;
}

static int check_node(const char *v)
{
	if (!sync_name_ok(v) || strlen(v) > CORE_NAME_MAX) {
		cli_err("-target-node: bad node name \"%s\"", v);
		return -EINVAL;
	}
	return 0;
}

/* Which flags the op takes, and the ones it needs. */
static int check_allowed(const struct args *a)
{
	const struct op *op = a->op;
	char key[40];

	for (int i = F_VM; i < F_COUNT; i++) {
		if (!a->f[i].value || i == F_NAMESPACE || i == F_KUBECONFIG)
			continue;
		snprintf(key, sizeof(key), " %s ", a->f[i].name);
		if (!strstr(op->flags, key)) {
			cli_err("-op %s does not take -%s", op->name,
				a->f[i].name);
			return -EINVAL;
		}
	}
	if (op->kind != K_LIST && !val(a, F_VM)) {
		cli_err("-op %s needs -vm NAME", op->name);
		return -EINVAL;
	}
	return 0;
}

static int need(const struct args *a, int i)
{
	if (val(a, i))
		return 0;
	cli_err("-op %s needs -%s", a->op->name, a->f[i].name);
	return -EINVAL;
}

static int check_values(struct args *a)
{
	int r = 0;

	if (val(a, F_VM))
		r = r ? r : check_name("vm", val(a, F_VM));
	if (val(a, F_NAMESPACE))
		r = r ? r : check_name("namespace", val(a, F_NAMESPACE));
	if (val(a, F_TEMPLATE))
		r = r ? r : check_name("template", val(a, F_TEMPLATE));
	if (val(a, F_TARGET))
		r = r ? r : check_name("target", val(a, F_TARGET));
	if (val(a, F_SNAPSHOT))
		r = r ? r : check_name("snapshot", val(a, F_SNAPSHOT));
	if (val(a, F_NAME))
		r = r ? r : check_name("name", val(a, F_NAME));
	if (val(a, F_TARGET_NODE))
		r = r ? r : check_node(val(a, F_TARGET_NODE));
	if (val(a, F_CPUS))
		r = r ? r : check_cpus(val(a, F_CPUS), &a->cpus);
	if (val(a, F_MEMORY))
		r = r ? r : check_qty("memory", val(a, F_MEMORY), &a->memory);
	if (val(a, F_DISK))
		r = r ? r : check_qty("disk", val(a, F_DISK), &a->disk);
	if (val(a, F_IMAGE) && !*val(a, F_IMAGE)) {
		cli_err("-image: empty");
		r = -EINVAL;
	}
	return r;
}

/* Each op's own needs. */
static int check_op(const struct args *a)
{
	const char *n = a->op->name;

	if (!strcmp(n, "vm-clone") && need(a, F_TARGET) < 0)
		return -EINVAL;
	if (!strcmp(n, "vm-migrate"))
		return need(a, F_TARGET_NODE);
	if (!strcmp(n, "vm-snapshot-restore") ||
	    !strcmp(n, "vm-snapshot-delete"))
		return need(a, F_SNAPSHOT);
	if (!strcmp(n, "vm-resize") && !val(a, F_CPUS) && !val(a, F_MEMORY)) {
		cli_err("-op vm-resize needs -cpus or -memory");
		return -EINVAL;
	}
	if (!strcmp(n, "vm-clone") && !strcmp(val(a, F_TARGET), val(a, F_VM))) {
		cli_err("-target: a VM cannot be cloned onto itself");
		return -EINVAL;
	}
	return 0;
}

/* The seconds part of generated names: $HYPERCTL_NOW for tests (so their
 * goldens are stable), else the clock. */
static int now_secs(long long *out)
{
	const char *e = getenv("HYPERCTL_NOW");
	char *end;

	*out = (long long)time(NULL);
	if (!e || !*e)
		return 0;
	errno = 0;
	*out = strtoll(e, &end, 10);
	if (errno || *end || *out < 0) {
		cli_err("HYPERCTL_NOW: \"%s\" is not a number of seconds", e);
		return -EINVAL;
	}
	return 0;
}

/* "<vm>-<word>-<seconds>", the VM part cut so that the whole stays a
 * DNS label (the tree shows operations as directories of that name). */
static int gen_name(struct args *a, const char *word)
{
	char tail[48];
	long long now;
	size_t room, n;
	int r;

	if (val(a, F_NAME)) {
		snprintf(a->name, sizeof(a->name), "%s", val(a, F_NAME));
		return 0;
	}
	r = now_secs(&now);
	if (r < 0)
		return r;
	snprintf(tail, sizeof(tail), "-%s-%lld", word, now);
	room = CORE_NAME_MAX - strlen(tail);
	n = strlen(val(a, F_VM));
	if (n > room)
		n = room;
	while (n > 0 && val(a, F_VM)[n - 1] == '-')
		n--;
	snprintf(a->name, sizeof(a->name), "%.*s%s", (int)n, val(a, F_VM),
		 tail);
	return 0;
}

static json_object *jstr(const char *s)
{
	return json_object_new_string(s);
}

static json_object *jqty(uint64_t bytes)
{
	char q[32];

	core_qty_format(bytes, q, sizeof(q));
	return json_object_new_string(q);
}

static json_object *ref(const char *name)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "name", jstr(name));
	return o;
}

static json_object *object(const struct args *a, const char *kind,
			   const char *name, json_object **spec)
{
	json_object *o = json_object_new_object();
	json_object *md = json_object_new_object();

	json_object_object_add(o, "apiVersion", jstr(CORE_API_VERSION));
	json_object_object_add(o, "kind", jstr(kind));
	json_object_object_add(md, "name", jstr(name));
	if (val(a, F_NAMESPACE))
		json_object_object_add(md, "namespace",
				       jstr(val(a, F_NAMESPACE)));
	json_object_object_add(o, "metadata", md);
	*spec = json_object_new_object();
	json_object_object_add(o, "spec", *spec);
	return o;
}

static json_object *build_vm(const struct args *a)
{
	json_object *spec, *o = object(a, "VirtualMachine", val(a, F_VM), &spec);
	json_object *img, *disk, *disks;

	if (!strcmp(a->op->name, "vm-delete")) {
		/* kubectl delete -f - needs only the kind and the name. */
		json_object_object_del(o, "spec");
		return o;
	}
	if (val(a, F_CPUS))
		json_object_object_add(spec, "cpus",
				       json_object_new_int(a->cpus));
	if (val(a, F_MEMORY))
		json_object_object_add(spec, "memory", jqty(a->memory));
	if (val(a, F_DISK)) {
		disk = json_object_new_object();
		json_object_object_add(disk, "name", jstr("root"));
		json_object_object_add(disk, "size", jqty(a->disk));
		disks = json_object_new_array();
		json_object_array_add(disks, disk);
		json_object_object_add(spec, "disks", disks);
	}
	if (val(a, F_TEMPLATE) || val(a, F_IMAGE)) {
		img = json_object_new_object();
		if (val(a, F_TEMPLATE))
			json_object_object_add(img, "templateRef",
					       ref(val(a, F_TEMPLATE)));
		if (val(a, F_IMAGE))
			json_object_object_add(img, "source",
					       jstr(val(a, F_IMAGE)));
		json_object_object_add(spec, "image", img);
	}
	return o;
}

/* The part of a VMOperation spec that only some operations have. */
static void op_detail(const struct args *a, json_object *spec)
{
	const char *verb = a->op->verb;
	json_object *d = json_object_new_object();
	const char *key = NULL;

	if (!strcmp(verb, "clone")) {
		key = "cloneSpec";
		json_object_object_add(d, "targetName", jstr(val(a, F_TARGET)));
	} else if (!strcmp(verb, "migrate")) {
		key = "migrateSpec";
		json_object_object_add(d, "targetNode",
				       jstr(val(a, F_TARGET_NODE)));
		json_object_object_add(d, "live", json_object_new_boolean(1));
	} else if (!strcmp(verb, "resize")) {
		key = "resizeSpec";
		if (val(a, F_CPUS))
			json_object_object_add(d, "cpus",
					       json_object_new_int(a->cpus));
		if (val(a, F_MEMORY))
			json_object_object_add(d, "memory", jqty(a->memory));
	} else if (!strcmp(verb, "restore")) {
		key = "snapshotSpec";
		json_object_object_add(d, "snapshotName",
				       jstr(val(a, F_SNAPSHOT)));
	}
	if (key)
		json_object_object_add(spec, key, d);
	else
		json_object_put(d);
}

static json_object *build_op(struct args *a)
{
	json_object *spec, *o;

	if (gen_name(a, a->op->verb) < 0)
		return NULL;
	o = object(a, "VMOperation", a->name, &spec);
	json_object_object_add(spec, "vmRef", ref(val(a, F_VM)));
	json_object_object_add(spec, "operation", jstr(a->op->verb));
	op_detail(a, spec);
	return o;
}

static json_object *build_snap(struct args *a)
{
	json_object *spec, *o;

	if (val(a, F_SNAPSHOT))
		snprintf(a->name, sizeof(a->name), "%s", val(a, F_SNAPSHOT));
	else if (gen_name(a, "snap") < 0)
		return NULL;
	o = object(a, "VMSnapshot", a->name, &spec);
	json_object_object_add(spec, "vmRef", ref(val(a, F_VM)));
	if (!strcmp(a->op->name, "vm-snapshot-create"))
		json_object_object_add(spec, "includeMemory",
			json_object_new_boolean(a->f[F_INCLUDE_MEMORY].on));
	return o;
}

static int print_manifest(struct args *a)
{
	json_object *o = NULL;
	char *y = NULL;
	size_t n;
	int r = -EINVAL;

	if (a->op->kind == K_VM)
		o = build_vm(a);
	else if (a->op->kind == K_OP)
		o = build_op(a);
	else
		o = build_snap(a);
	if (!o)
		goto out;
	r = core_yaml_emit(o, &y, &n);
	if (r < 0) {
		cli_err("cannot write YAML: %s", strerror(-r));
		goto out;
	}
	if (fwrite(y, 1, n, stdout) != n || fflush(stdout) != 0) {
		cli_err("stdout: %s", strerror(errno));
		r = -EIO;
	}
out:
	free(y);
	json_object_put(o);
	return r;
}

static void init_flags(struct cli_flag *f)
{
	static const char *const names[F_COUNT] = {
		"op", "vm", "cpus", "memory", "disk", "image", "template",
		"target", "target-node", "snapshot", "include-memory",
		"namespace", "kubeconfig", "name", "help",
	};

	for (int i = 0; i < F_COUNT; i++) {
		f[i].name = names[i];
		f[i].boolean = i == F_INCLUDE_MEMORY || i == F_HELP;
	}
}

/* The VMOperation verbs are CORE_OPS rows with a cli name; the flags
 * their operation's details need, the plain ones otherwise. */
static const char *const op_flags[CORE_V_COUNT] = {
	[CORE_V_CLONE] = " vm target name ",
	[CORE_V_MIGRATE] = " vm target-node name ",
	[CORE_V_RESIZE] = " vm cpus memory name ",
	[CORE_V_REVERT] = " vm snapshot name ",
};

static const struct op *find_op(const char *name)
{
	static struct op from_table;
	const struct core_op *c = core_op_by_cli(name);

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(ops[i].name, name))
			return &ops[i];
	if (!c)
		return NULL;
	from_table = (struct op){ c->cli, K_OP, c->operation,
				  op_flags[c->verb] ? op_flags[c->verb] :
						      " vm name " };
	return &from_table;
}

void cli_k8s_ops(FILE *f)
{
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		fprintf(f, "%s%s", i ? " " : "", ops[i].name);
	for (int v = 0; v < CORE_V_COUNT; v++)
		if (core_op(v)->cli)
			fprintf(f, " %s", core_op(v)->cli);
}

static void k8s_usage(FILE *f)
{
	fputs("usage: hyperctl k8s -op OP [-vm NAME] [-namespace NS] "
	      "[-kubeconfig FILE] [flags]\nops: ", f);
	cli_k8s_ops(f);
	fputs("\nSee hyperctl(1).\n", f);
}

int cli_k8s_main(int argc, char **argv)
{
	struct args a = { 0 };
	int rest;

	init_flags(a.f);
	if (cli_flags_parse(argc, argv, a.f, F_COUNT, &rest) < 0)
		return CLI_EXIT_USAGE;
	if (a.f[F_HELP].on) {
		k8s_usage(stdout);
		return 0;
	}
	if (rest < argc) {
		cli_err("unexpected argument \"%s\" (flags only after k8s)",
			argv[rest]);
		return CLI_EXIT_USAGE;
	}
	if (!val(&a, F_OP)) {
		cli_err("k8s needs -op OP");
		k8s_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	a.op = find_op(val(&a, F_OP));
	if (!a.op) {
		cli_err("unknown -op \"%s\"", val(&a, F_OP));
		return CLI_EXIT_USAGE;
	}
	if (check_allowed(&a) < 0 || check_values(&a) < 0 || check_op(&a) < 0)
		return CLI_EXIT_USAGE;
	if (a.op->kind == K_LIST)
		return cli_k8s_list(a.op->name, val(&a, F_KUBECONFIG),
				    val(&a, F_NAMESPACE), val(&a, F_VM));
	return print_manifest(&a) < 0 ? CLI_EXIT_FAIL : 0;
}
