/* Kubernetes Events: every line of a VM's events (core_model_event)
 * becomes an Event regarding its VirtualMachine, and an operation's start
 * and end one regarding its VMOperation, so `kubectl get events
 * --field-selector involvedObject.name=VM` tells what the tree's events
 * file tells.  sync aggregates repeats and queues while offline. */
#include <string.h>

#include "mountd/priv.h"

/* Reasons that say something went wrong (type Warning). */
static const char *const warnings[] = {
	"Error", "Crashed", "StopTimeout", "InvalidSpec", "Warning",
	"OperationFailed", "Failed", "Cancelled", "NodeLost", "DomainMissing",
	NULL,
};

static bool warning(const char *reason)
{
	for (int i = 0; warnings[i]; i++)
		if (!strcmp(reason, warnings[i]))
			return true;
	return false;
}

/* Model write lock held: only a copy and a queue (sync_report). */
static void on_event(void *arg, const struct core_vm *vm, time_t when,
		     const char *reason, const char *msg)
{
	struct mountd *md = arg;
	struct sync_report r = { .kind = SYNC_VM, .name = vm->name,
				 .uid = vm->uid, .warning = warning(reason),
				 .reason = reason, .note = msg, .when = when };

	sync_report(md->sync, &r);
}

void md_report_init(struct mountd *md)
{
	if (md->sync)
		core_model_on_event(md->m, on_event, md);
}

void md_report_op(struct mountd *md, const char *op, const char *uid,
		  const char *reason, const char *note)
{
	struct sync_report r = { .kind = SYNC_OPERATION, .name = op,
				 .uid = uid ? uid : "",
				 .warning = warning(reason), .reason = reason,
				 .note = note };

	if (md->sync)
		sync_report(md->sync, &r);
}
