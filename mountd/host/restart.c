/* Restarts after stops nobody asked for (highAvailability), spaced as
 * Kubernetes spaces a crashing container's: 10 s doubling to 5 min, and
 * back to 10 s after 10 min of running (core_restart_delay).  The wait
 * is status (nextRestart, Ready's reason CrashLoopBackOff); the
 * reconciler's queue brings the VM back when it is due. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mountd/priv.h"

static void backoff_cond(struct core_status *st, unsigned delay, time_t now)
{
	char msg[160], at[32];

	core_rfc3339(st->next_restart, at, sizeof(at));
	snprintf(msg, sizeof(msg), "back-off %us restarting the stopped "
		 "guest (restart %u at %s)", delay, st->restarts + 1, at);
	core_status_cond(st, CORE_COND_READY, false, "CrashLoopBackOff", msg,
			 now);
}

time_t md_restart_plan(struct mountd *md, struct core_vm *vm, time_t started,
		       time_t now)
{
	struct core_status *st = &vm->st;
	unsigned first = md->cfg.restart_backoff_s ? md->cfg.restart_backoff_s :
			 CORE_BACKOFF_FIRST_S;
	unsigned delay = core_restart_delay(&md_x(vm)->failures, started, now,
					    first);

	st->next_restart = now + delay;
	backoff_cond(st, delay, now);
	return st->next_restart;
}

/* Model lock held: a refresh of a VM that waits keeps saying so. */
void md_restart_show(struct core_vm *vm, time_t now)
{
	struct core_status *st = &vm->st;

	if (!st->next_restart)
		return;
	if (st->phase != CORE_PHASE_STOPPED && st->phase != CORE_PHASE_FAILED) {
		st->next_restart = 0;   /* it runs again: whoever started it */
		return;
	}
	backoff_cond(st, st->next_restart > now ?
		     (unsigned)(st->next_restart - now) : 0, now);
}

enum due { NOT_WAITING, NOT_YET, DUE, CANCELLED };

struct take {
	time_t now;
	enum due due;
	time_t at;
};

static int take_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	struct take *t = arg;
	struct core_status *st = &vm->st;

	t->at = st->next_restart;
	if (!st->next_restart)
		t->due = NOT_WAITING;
	else if (md_x(vm)->mark.hold != MD_HOLD_NONE || st->next_restart > t->now)
		t->due = NOT_YET;
	else
		t->due = vm->spec.running ? DUE : CANCELLED;
	if (t->due == DUE)
		st->restarts++;
	if (t->due == DUE || t->due == CANCELLED) {
		st->next_restart = 0;
		core_model_status_changed(md->m, vm);
	}
	return 0;
}

static int failed_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	time_t *due = arg;

	*due = md_restart_plan(md, vm, 0, time(NULL));
	core_model_status_changed(md->m, vm);
	return 0;
}

void md_restart_if_due(struct mountd *md, const char *name)
{
	/* An HA restart keeps a VM up: no carbon wait (start now). */
	struct core_ctl msg = { .verb = CORE_V_START, .now = true };
	struct take t = { .now = time(NULL) };
	char err[CORE_ERR_MAX];
	time_t due;

	if (md_vm_edit(md, name, take_locked, &t) < 0 || t.due == NOT_WAITING ||
	    t.due == CANCELLED)
		return;
	if (t.due == NOT_YET) {
		/* Busy when it came due: look again in a second. */
		md_nq_put_at(&md->work.q, name, t.at > t.now ? t.at : t.now + 1);
		return;
	}
	md_log(LOG_INFO_, "vm %s: restarting (highAvailability)", name);
	if (md_do(md, name, &msg, err, sizeof(err)) == 0)
		return;
	md_log(LOG_WARN_, "restart %s: %s", name, err);
	if (md_vm_edit(md, name, failed_locked, &due) == 0)
		md_nq_put_at(&md->work.q, name, due);
}

static int cancel_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	(void)arg;
	if (!vm->st.next_restart)
		return -ENOENT;
	vm->st.next_restart = 0;
	md_x(vm)->failures = 0;
	core_status_cond(&vm->st, CORE_COND_READY, false, "RestartCancelled",
			 "a stop cancelled the restart", time(NULL));
	core_model_event(md->m, vm, "RestartCancelled",
			 "stop: the restart that was waiting will not come");
	core_model_status_changed(md->m, vm);
	return 0;
}

bool md_restart_cancel(struct mountd *md, const char *name)
{
	if (md_vm_edit(md, name, cancel_locked, NULL) < 0)
		return false;
	md_set_running(md, name, false);
	return true;
}

bool md_restart_waiting(const struct md_vm *v, time_t now)
{
	return v->next_restart > now;
}
