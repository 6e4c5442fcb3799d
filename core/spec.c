/* The typed view of a VirtualMachine spec.  Validation names the field in
 * the error ("spec.disks[1].size: bad quantity \"x\"") because the user
 * fixes the YAML by that path. */
#include "core/core.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CPUS_MAX 512
/* Bounds on what one spec may ask of a node: virtio-blk names and PCI
 * slots run out long before, and a sparse disk's size is a promise the
 * pool must be able to keep. */
#define DISKS_MAX 32
#define NETS_MAX 16
#define DISK_SIZE_MAX (64ULL << 40)     /* 64 TiB */
#define PATH_MAX_LEN 96
#define MIB (1024ull * 1024ull)

struct vctx {
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4)))
static int fail(struct vctx *v, const char *path, const char *fmt, ...)
{
	char msg[CORE_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(v->err, v->errlen, "%s: %s", path, msg);
	return -EINVAL;
}

/* ---- field readers: absent fields leave *out alone ----------------- */

static json_object *field(json_object *o, const char *key)
{
	json_object *f = NULL;

	if (!json_object_object_get_ex(o, key, &f))
		return NULL;
	/* An explicit null is how kubectl and YAML say "not set". */
	return json_object_is_type(f, json_type_null) ? NULL : f;
}

static int read_int(struct vctx *v, json_object *o, const char *key,
		    const char *path, int min, int max, int *out)
{
	json_object *f = field(o, key);
	int64_t n;

	if (!f)
		return 0;
	if (!json_object_is_type(f, json_type_int))
		return fail(v, path, "must be an integer");
	n = json_object_get_int64(f);
	if (n < min)
		return fail(v, path, "must be >= %d", min);
	if (n > max)
		return fail(v, path, "must be <= %d", max);
	*out = (int)n;
	return 0;
}

static int read_bool(struct vctx *v, json_object *o, const char *key,
		     const char *path, bool *out)
{
	json_object *f = field(o, key);

	if (!f)
		return 0;
	if (!json_object_is_type(f, json_type_boolean))
		return fail(v, path, "must be true or false");
	*out = json_object_get_boolean(f);
	return 0;
}

static int read_str(struct vctx *v, json_object *o, const char *key,
		    const char *path, char **out)
{
	json_object *f = field(o, key);
	const char *s;

	if (!f)
		return 0;
	if (!json_object_is_type(f, json_type_string))
		return fail(v, path, "must be a string");
	s = json_object_get_string(f);
	if (strlen(s) != (size_t)json_object_get_string_len(f))
		return fail(v, path, "must not contain NUL bytes");
	free(*out);
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int read_name(struct vctx *v, json_object *o, const char *key,
		     const char *path, bool required, char **out)
{
	char nerr[CORE_ERR_MAX];
	int r;

	r = read_str(v, o, key, path, out);
	if (r < 0)
		return r;
	if (!*out)
		return required ? fail(v, path, "required") : 0;
	if (core_name_check(*out, nerr, sizeof(nerr)) < 0)
		return fail(v, path, "%s", nerr);
	return 0;
}

static int read_enum(struct vctx *v, json_object *o, const char *key,
		     const char *path, const char *const *allowed, char **out)
{
	char q[80], want[128] = "";
	size_t n = 0;
	int r;

	r = read_str(v, o, key, path, out);
	if (r < 0 || !*out)
		return r;
	for (const char *const *a = allowed; *a; a++, n++)
		if (strcmp(*out, *a) == 0)
			return 0;
	for (size_t i = 0; i < n; i++)
		snprintf(want + strlen(want), sizeof(want) - strlen(want),
			 "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ",
			 allowed[i]);
	core_quote(q, sizeof(q), *out, strlen(*out));
	return fail(v, path, "bad value %s: want %s", q, want);
}

/* A quantity as a string ("8Gi") or as integer bytes. */
static int read_qty(struct vctx *v, json_object *o, const char *key,
		    const char *path, uint64_t *out)
{
	json_object *f = field(o, key);
	char qerr[CORE_ERR_MAX];
	double d;

	if (!f)
		return 0;
	switch (json_object_get_type(f)) {
	case json_type_string:
		if (core_qty_parse(json_object_get_string(f), out, qerr,
				   sizeof(qerr)) < 0)
			return fail(v, path, "%s", qerr);
		return 0;
	case json_type_int:
		if (json_object_get_int64(f) < 0)
			return fail(v, path, "must not be negative");
		*out = json_object_get_uint64(f);
		return 0;
	case json_type_double:
		d = json_object_get_double(f);
		if (!isfinite(d) || d < 0 || d >= 18446744073709551616.0 ||
		    d != (double)(uint64_t)d)
			return fail(v, path, "must be a whole number of bytes");
		*out = (uint64_t)d;
		return 0;
	default:
		return fail(v, path, "must be a quantity such as \"8Gi\"");
	}
}

static int read_obj(struct vctx *v, json_object *o, const char *key,
		    const char *path, json_object **out)
{
	json_object *f = field(o, key);

	*out = NULL;
	if (!f)
		return 0;
	if (!json_object_is_type(f, json_type_object))
		return fail(v, path, "must be a mapping");
	*out = f;
	return 0;
}

static int read_strmap(struct vctx *v, json_object *o, const char *key,
		       const char *path, struct core_kv **out, size_t *n)
{
	char p[PATH_MAX_LEN + 80];
	json_object *m;
	int r;

	r = read_obj(v, o, key, path, &m);
	if (r < 0 || !m)
		return r;
	*out = calloc((size_t)json_object_object_length(m) + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	json_object_object_foreach(m, k, val) {
		snprintf(p, sizeof(p), "%s.%.64s", path, k);
		/* The key is user text and err must stay one line. */
		for (char *c = p; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				*c = '?';
		if (!json_object_is_type(val, json_type_string) ||
		    strlen(json_object_get_string(val)) !=
			    (size_t)json_object_get_string_len(val))
			return fail(v, p, "must be a string");
		(*out)[*n].key = strdup(k);
		(*out)[*n].value = strdup(json_object_get_string(val));
		(*n)++;
		if (!(*out)[*n - 1].key || !(*out)[*n - 1].value)
			return -ENOMEM;
	}
	return 0;
}

/* ---- sections ------------------------------------------------------ */

static int read_carbon(struct vctx *v, json_object *ca, struct core_spec *s)
{
	char *delay = NULL, derr[CORE_ERR_MAX];
	int r;

	r = read_bool(v, ca, "enabled", "spec.carbonAware.enabled",
		      &s->carbon_aware);
	if (r == 0)
		r = read_int(v, ca, "maxIntensity",
			     "spec.carbonAware.maxIntensity", 0, 100000,
			     &s->carbon_max_intensity);
	if (r == 0)
		r = read_str(v, ca, "maxDelay", "spec.carbonAware.maxDelay",
			     &delay);
	if (r == 0 && delay &&
	    core_duration_parse(delay, CORE_CARBON_DELAY_MAX_S,
				&s->carbon_max_delay_s, derr, sizeof(derr)) < 0)
		r = fail(v, "spec.carbonAware.maxDelay", "%s", derr);
	free(delay);
	return r;
}

static int read_disk(struct vctx *v, json_object *d, size_t i,
		     struct core_disk *out, struct core_disk *prev)
{
	char p[PATH_MAX_LEN], f[PATH_MAX_LEN + 16];
	int r;

	snprintf(p, sizeof(p), "spec.disks[%zu]", i);
	if (!json_object_is_type(d, json_type_object))
		return fail(v, p, "must be a mapping");
	snprintf(f, sizeof(f), "%s.name", p);
	r = read_name(v, d, "name", f, true, &out->name);
	for (size_t j = 0; r == 0 && j < i; j++)
		if (strcmp(prev[j].name, out->name) == 0)
			r = fail(v, f, "duplicate disk name \"%s\"", out->name);
	snprintf(f, sizeof(f), "%s.size", p);
	if (r == 0)
		r = read_qty(v, d, "size", f, &out->size);
	if (r == 0 && out->size > DISK_SIZE_MAX)
		r = fail(v, f, "must be <= 64Ti");
	snprintf(f, sizeof(f), "%s.storageClass", p);
	if (r == 0)
		r = read_str(v, d, "storageClass", f, &out->storage_class);
	snprintf(f, sizeof(f), "%s.bootOrder", p);
	if (r == 0)
		r = read_int(v, d, "bootOrder", f, 1, 9999, &out->boot_order);
	return r;
}

static int read_net(struct vctx *v, json_object *d, size_t i,
		    struct core_net *out, struct core_net *prev)
{
	char p[PATH_MAX_LEN], f[PATH_MAX_LEN + 16];
	int r;

	snprintf(p, sizeof(p), "spec.networks[%zu]", i);
	if (!json_object_is_type(d, json_type_object))
		return fail(v, p, "must be a mapping");
	snprintf(f, sizeof(f), "%s.name", p);
	r = read_name(v, d, "name", f, true, &out->name);
	for (size_t j = 0; r == 0 && j < i; j++)
		if (strcmp(prev[j].name, out->name) == 0)
			r = fail(v, f, "duplicate network name \"%s\"",
				 out->name);
	snprintf(f, sizeof(f), "%s.type", p);
	if (r == 0)
		r = read_str(v, d, "type", f, &out->type);
	if (r == 0 && out->type && !*out->type)
		r = fail(v, f, "must not be empty");
	if (r == 0 && !out->type)
		out->type = strdup("pod-network");
	return r == 0 && !out->type ? -ENOMEM : r;
}

static int read_disks(struct vctx *v, json_object *spec, struct core_spec *s)
{
	json_object *a = field(spec, "disks");
	size_t n;
	int r = 0;

	if (!a)
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return fail(v, "spec.disks", "must be a list");
	n = json_object_array_length(a);
	if (n > DISKS_MAX)
		return fail(v, "spec.disks", "at most %d disks", DISKS_MAX);
	s->disks = calloc(n + 1, sizeof(*s->disks));
	if (!s->disks)
		return -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++) {
		s->ndisks++;
		r = read_disk(v, json_object_array_get_idx(a, i), i,
			      &s->disks[i], s->disks);
	}
	return r;
}

static int read_nets(struct vctx *v, json_object *spec, struct core_spec *s)
{
	json_object *a = field(spec, "networks");
	size_t n;
	int r = 0;

	if (!a)
		return 0;
	if (!json_object_is_type(a, json_type_array))
		return fail(v, "spec.networks", "must be a list");
	n = json_object_array_length(a);
	if (n > NETS_MAX)
		return fail(v, "spec.networks", "at most %d networks", NETS_MAX);
	s->nets = calloc(n + 1, sizeof(*s->nets));
	if (!s->nets)
		return -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++) {
		s->nnets++;
		r = read_net(v, json_object_array_get_idx(a, i), i,
			     &s->nets[i], s->nets);
	}
	return r;
}

static int read_resources(struct vctx *v, json_object *spec,
			  struct core_spec *s)
{
	char q[32];
	int r;

	if (!field(spec, "cpus"))
		return fail(v, "spec.cpus", "required");
	if (!field(spec, "memory"))
		return fail(v, "spec.memory", "required");
	r = read_int(v, spec, "cpus", "spec.cpus", 1, CPUS_MAX, &s->cpus);
	if (r == 0)
		r = read_qty(v, spec, "memory", "spec.memory", &s->memory);
	if (r == 0 && s->memory < MIB)
		r = fail(v, "spec.memory", "must be at least 1Mi");
	if (r == 0)
		r = read_int(v, spec, "maxCpus", "spec.maxCpus", 1, CPUS_MAX,
			     &s->max_cpus);
	if (r == 0 && s->max_cpus && s->max_cpus < s->cpus)
		r = fail(v, "spec.maxCpus", "must be >= spec.cpus (%d)",
			 s->cpus);
	if (r == 0)
		r = read_qty(v, spec, "maxMemory", "spec.maxMemory",
			     &s->max_memory);
	if (r == 0 && s->max_memory && s->max_memory < s->memory) {
		core_qty_format(s->memory, q, sizeof(q));
		r = fail(v, "spec.maxMemory", "must be >= spec.memory (%s)", q);
	}
	return r;
}

static int read_image(struct vctx *v, json_object *spec, struct core_spec *s)
{
	json_object *img, *ref;
	int r;

	r = read_obj(v, spec, "image", "spec.image", &img);
	if (r < 0 || !img)
		return r;
	r = read_obj(v, img, "templateRef", "spec.image.templateRef", &ref);
	if (r == 0 && ref)
		r = read_name(v, ref, "name", "spec.image.templateRef.name",
			      true, &s->template_ref);
	if (r == 0)
		r = read_str(v, img, "source", "spec.image.source",
			     &s->image_source);
	if (r == 0)
		r = read_str(v, img, "checksum", "spec.image.checksum",
			     &s->image_checksum);
	return r;
}

static int read_cloud_init(struct vctx *v, json_object *spec,
			   struct core_spec *s)
{
	json_object *ci;
	int r;

	r = read_obj(v, spec, "cloudInit", "spec.cloudInit", &ci);
	if (r < 0 || !ci)
		return r;
	r = read_str(v, ci, "userData", "spec.cloudInit.userData",
		     &s->user_data);
	if (r == 0)
		r = read_str(v, ci, "networkData", "spec.cloudInit.networkData",
			     &s->network_data);
	if (r == 0)
		r = read_str(v, ci, "metaData", "spec.cloudInit.metaData",
			     &s->meta_data);
	return r;
}

static int read_policies(struct vctx *v, json_object *spec,
			 struct core_spec *s)
{
	static const char *const restart[] = { "Always", "OnFailure", "Never",
					       NULL };
	static const char *const evict[] = { "LiveMigrate", "Shutdown", "None",
					     NULL };
	json_object *ca, *ha;
	int r;

	r = read_obj(v, spec, "carbonAware", "spec.carbonAware", &ca);
	if (r == 0 && ca)
		r = read_carbon(v, ca, s);
	if (r == 0)
		r = read_obj(v, spec, "highAvailability",
			     "spec.highAvailability", &ha);
	if (r < 0 || !ha)
		return r;
	r = read_bool(v, ha, "enabled", "spec.highAvailability.enabled",
		      &s->ha_enabled);
	if (r == 0)
		r = read_enum(v, ha, "restartPolicy",
			      "spec.highAvailability.restartPolicy", restart,
			      &s->ha_restart_policy);
	if (r == 0)
		r = read_enum(v, ha, "evictionStrategy",
			      "spec.highAvailability.evictionStrategy", evict,
			      &s->ha_eviction);
	/* The seed documents these as the defaults of an HA block. */
	if (r == 0 && !s->ha_restart_policy)
		s->ha_restart_policy = strdup("Always");
	if (r == 0 && !s->ha_eviction)
		s->ha_eviction = strdup("LiveMigrate");
	if (r == 0 && (!s->ha_restart_policy || !s->ha_eviction))
		r = -ENOMEM;
	return r;
}

static int read_abs_path(struct vctx *v, json_object *o, const char *key,
			 const char *path, char **out)
{
	int r = read_str(v, o, key, path, out);

	if (r == 0 && *out && (*out)[0] != '/')
		r = fail(v, path, "must be an absolute path");
	return r;
}

static int read_machine(struct vctx *v, json_object *spec,
			struct core_spec *s)
{
	static const char *const fw[] = { "bios", "uefi", NULL };
	json_object *kb;
	int r;

	r = read_str(v, spec, "machineType", "spec.machineType",
		     &s->machine_type);
	if (r == 0 && s->machine_type &&
	    (!*s->machine_type || strlen(s->machine_type) > 64 ||
	     strspn(s->machine_type, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
		     strlen(s->machine_type)))
		r = fail(v, "spec.machineType", "bad machine type");
	if (r == 0)
		r = read_enum(v, spec, "firmware", "spec.firmware", fw,
			      &s->firmware);
	if (r == 0)
		r = read_bool(v, spec, "guestAgent", "spec.guestAgent",
			      &s->guest_agent);
	if (r == 0)
		r = read_obj(v, spec, "kernelBoot", "spec.kernelBoot", &kb);
	if (r < 0 || !kb)
		return r;
	r = read_abs_path(v, kb, "kernel", "spec.kernelBoot.kernel",
			  &s->kernel);
	if (r == 0 && !s->kernel)
		r = fail(v, "spec.kernelBoot.kernel", "required");
	if (r == 0)
		r = read_abs_path(v, kb, "initrd", "spec.kernelBoot.initrd",
				  &s->initrd);
	if (r == 0)
		r = read_str(v, kb, "cmdline", "spec.kernelBoot.cmdline",
			     &s->cmdline);
	return r;
}

int core_spec_from_json(json_object *spec, struct core_spec *out, char *err,
			size_t errlen)
{
	struct vctx v = { .err = err, .errlen = errlen };
	int r;

	memset(out, 0, sizeof(*out));
	out->carbon_max_intensity = CORE_CARBON_MAX_INTENSITY;
	out->carbon_max_delay_s = CORE_CARBON_DELAY_S;
	if (!json_object_is_type(spec, json_type_object))
		return fail(&v, "spec", "must be a mapping");
	r = read_resources(&v, spec, out);
	if (r == 0)
		r = read_bool(&v, spec, "running", "spec.running",
			      &out->running);
	if (r == 0)
		r = read_disks(&v, spec, out);
	if (r == 0)
		r = read_nets(&v, spec, out);
	if (r == 0)
		r = read_image(&v, spec, out);
	if (r == 0)
		r = read_cloud_init(&v, spec, out);
	if (r == 0)
		r = read_policies(&v, spec, out);
	if (r == 0)
		r = read_machine(&v, spec, out);
	if (r == 0)
		r = read_strmap(&v, spec, "nodeSelector", "spec.nodeSelector",
				&out->node_selector, &out->nnode_selector);
	if (r == 0)
		r = read_strmap(&v, spec, "labels", "spec.labels", &out->labels,
				&out->nlabels);
	if (r == -ENOMEM)
		snprintf(err, errlen, "spec: out of memory");
	if (r < 0)
		core_spec_free(out);
	return r;
}

static void free_kv(struct core_kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

void core_spec_free(struct core_spec *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ndisks; i++) {
		free(s->disks[i].name);
		free(s->disks[i].storage_class);
	}
	free(s->disks);
	for (size_t i = 0; i < s->nnets; i++) {
		free(s->nets[i].name);
		free(s->nets[i].type);
	}
	free(s->nets);
	free_kv(s->node_selector, s->nnode_selector);
	free_kv(s->labels, s->nlabels);
	free(s->template_ref);
	free(s->image_source);
	free(s->image_checksum);
	free(s->user_data);
	free(s->network_data);
	free(s->meta_data);
	free(s->ha_restart_policy);
	free(s->ha_eviction);
	free(s->machine_type);
	free(s->firmware);
	free(s->kernel);
	free(s->initrd);
	free(s->cmdline);
	memset(s, 0, sizeof(*s));
}

static json_object *named(const char *name, const char *k2, const char *v2)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "name", json_object_new_string(name));
	json_object_object_add(o, k2, json_object_new_string(v2));
	return o;
}

json_object *core_spec_default(void)
{
	json_object *spec = json_object_new_object();
	json_object *disks = json_object_new_array();
	json_object *nets = json_object_new_array();

	json_object_object_add(spec, "cpus", json_object_new_int(1));
	json_object_object_add(spec, "memory", json_object_new_string("256Mi"));
	json_object_object_add(spec, "running", json_object_new_boolean(0));
	json_object_array_add(disks, named("root", "size", "1Gi"));
	json_object_object_add(spec, "disks", disks);
	json_object_array_add(nets, named("default", "type", "pod-network"));
	json_object_object_add(spec, "networks", nets);
	return spec;
}

void core_spec_set_int(json_object *spec, const char *key, int64_t v)
{
	json_object_object_add(spec, key, json_object_new_int64(v));
}

void core_spec_set_bool(json_object *spec, const char *key, bool v)
{
	json_object_object_add(spec, key, json_object_new_boolean(v));
}

void core_spec_set_string(json_object *spec, const char *key, const char *v)
{
	json_object_object_add(spec, key, json_object_new_string(v));
}
