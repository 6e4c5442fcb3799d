/* Where every verb comes in: a ctl write (fs, the dashboard), a
 * VMOperation, the reconciler.  md_do picks the way from the verb's row
 * in CORE_OPS (core/core.h): an object of its own, a forward to the
 * owner, or a run here under the VM's busy mark. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mountd/priv.h"

static const md_run_fn run_fn[CORE_V_COUNT] = {
#define RUN(id, verb, op, flags, cli, from, to) \
	[CORE_V_##id] = md_run_##verb,
	CORE_OPS(RUN)
#undef RUN
};

md_run_fn md_run_of(enum core_verb v)
{
	return (unsigned)v < CORE_V_COUNT ? run_fn[v] : NULL;
}

int md_verb_check(const char *name, const struct core_ctl *msg,
		  enum core_phase ph, char *err, size_t errlen)
{
	if (core_op_allowed(msg, (int)ph))
		return 0;
	if (msg->verb == CORE_V_DELETE)
		snprintf(err, errlen, "delete: vm %s is %s (stop it first, or "
			 "delete force)", name, core_phase_name(ph));
	else
		snprintf(err, errlen, "%s: vm %s is %s", core_verb_name(msg->verb),
			 name, core_phase_name(ph));
	return -EBUSY;
}

/* A verb of this node's VM: checked for the phase, run under the mark. */
static int run_here(struct mountd *md, const char *name,
		    const struct core_ctl *msg, char *err, size_t errlen)
{
	struct md_mark m = md_mark_verb(msg->verb, msg->force);
	struct md_job j = { .vm = name, .msg = msg };
	struct md_vm v;
	int rc;

	/* A stop while a restart waits for its backoff, or a start for a
	 * greener grid: it will not come. */
	if (msg->verb == CORE_V_STOP && (md_restart_cancel(md, name) ||
					 md_carbon_cancel(md, name)))
		return 0;
	/* A verb refused for the phase leaves the status untouched. */
	if (md_vm_get(md, name, &v) == 0 &&
	    (rc = md_verb_check(name, msg, v.phase, err, errlen)) < 0)
		return rc;
	rc = md_claim(md, name, m, &v, err, errlen);
	if (rc < 0)
		return rc;
	/* The phase may have moved between the look and the mark. */
	j.phase = v.phase;
	rc = md_verb_check(name, msg, v.phase, err, errlen);
	if (rc == 0)
		rc = run_fn[msg->verb](md, &j, err, errlen);
	md_release(md, name, m);
	return rc;
}

int md_do(struct mountd *md, const char *vm, const struct core_ctl *msg,
	  char *err, size_t errlen)
{
	const struct core_op *op = core_op(msg->verb);
	char owner[CORE_NAME_MAX + 1];
	struct md_job j = { .vm = vm, .msg = msg };
	int rc;

	if (!op) {
		snprintf(err, errlen, "unknown verb %d", (int)msg->verb);
		return -EINVAL;
	}
	if (op->flags & CORE_OPF_DIR)
		rc = run_fn[msg->verb](md, &j, err, errlen);
	/* Objects of their own: the owner runs them wherever the write
	 * came in. */
	else if (op->flags & CORE_OPF_OBJECT)
		rc = md_op_ctl(md, vm, msg, err, errlen);
	else if (!md_owned(md, vm, owner, sizeof(owner)))
		rc = md_cluster_forward(md, vm, msg, owner, err, errlen);
	else
		rc = run_here(md, vm, msg, err, errlen);
	md_nodes_flush(md);
	return rc;
}

static int fs_ctl(void *arg, const char *vm, const struct core_ctl *msg,
		  char *err, size_t errlen)
{
	if (!vm && msg->verb != CORE_V_CREATE) {
		snprintf(err, errlen, "%s: not valid here",
			 core_verb_name(msg->verb));
		return -EINVAL;
	}
	return md_do(arg, vm, msg, err, errlen);
}

static int fs_spec(void *arg, const char *name, json_object *spec, char *err,
		   size_t errlen)
{
	return md_spec_write(arg, name, spec, err, errlen);
}

static int fs_obj(void *arg, enum core_kind kind, const char *vm,
		  const char *name, const char *verb, json_object *spec,
		  char *err, size_t errlen)
{
	return md_obj(arg, kind, vm, name, verb, spec, err, errlen);
}

static int fs_node(void *arg, const char *node, enum core_node_verb verb,
		   char *err, size_t errlen)
{
	return md_node_ctl(arg, node, verb, err, errlen);
}

const struct fs_ops md_fs_ops = {
	.ctl = fs_ctl,
	.spec = fs_spec,
	.obj = fs_obj,
	.node = fs_node,
};
