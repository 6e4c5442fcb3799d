/* Shared by the operations engine's files only (mountd/ops/); the rest
 * of the daemon sees priv.h. */
#ifndef HYPERSDK_MOUNTD_OPS_OPS_H
#define HYPERSDK_MOUNTD_OPS_OPS_H

#include <stdarg.h>

#include "mountd/priv.h"

enum { OPS_CANCEL_USER = 1, OPS_CANCEL_TIMEOUT = 2 };

/* An operation without spec.timeout, and a writer's wait for an
 * operation another node runs. */
#define OPS_TIMEOUT_S (30 * 60)
/* How long a cancel waits for the operation to end. */
#define OPS_CANCEL_WAIT_S 60
/* Beyond an operation's own timeout: the owner's status must travel back
 * through the API server. */
#define OPS_REMOTE_GRACE_S 30

struct progress_ctx;

void ops_now(char *buf, size_t len);
/* A JSON string, "" for NULL (status values). */
json_object *ops_jstr(const char *s);
json_object *ops_new_object(struct mountd *md, enum core_kind kind,
			    const char *name, const char *vm);
/* run_here: this node runs it, so its status here is the news. */
int ops_create(struct mountd *md, enum core_kind kind, json_object *obj,
	       bool run_here, char *err, size_t errlen);
void ops_delete(struct mountd *md, enum core_kind kind, const char *name);
void ops_publish(struct mountd *md, enum core_kind kind, const char *name);
void ops_status(struct mountd *md, enum core_kind kind, const char *name, ...);
void ops_condition(struct mountd *md, enum core_kind kind, const char *name,
		   const char *type, bool status, const char *reason,
		   const char *msg);

struct md_run *ops_run_begin(struct mountd *md, const char *op,
			     const char *vm, int timeout_s);
void ops_run_end(struct mountd *md, struct md_run *run);
int ops_cancelled(struct md_run *run);
int ops_cancel_reason(struct md_run *run);
const int *ops_cancel_flag(struct md_run *run);
int ops_cancel(struct mountd *md, const char *vm, char *err, size_t errlen);
void ops_cancel_op(struct mountd *md, const char *op);
void ops_progress_init(struct be_progress *bp, struct progress_ctx **ctx,
		       struct mountd *md, enum core_kind kind,
		       const char *name, struct md_run *run);
int ops_duration_s(const char *s);
bool ops_run_exists(struct mountd *md, const char *op);
void ops_run_timeout(struct md_run *run, int timeout_s);
int ops_run(struct mountd *md, const char *name, struct md_run *run,
	    char *err, size_t errlen);
int ops_wait_remote(struct mountd *md, enum core_kind kind, const char *name,
		    int timeout_s, char *err, size_t errlen);
int ops_snapshot_ctl(struct mountd *md, const char *vm,
		     const struct core_ctl *msg, bool owned, char *err,
		     size_t errlen);

/* verbs.c: clone, migrate, resize and revert are md_run_<verb> (priv.h);
 * the refusals a ctl write gets before any object is made: */
int ops_precheck(struct mountd *md, const char *vm,
		 const struct core_ctl *msg, char *err, size_t errlen);
/* snapshots (snapshots.c) */
int ops_snapshot_take(struct mountd *md, const char *snap, char *err,
		      size_t errlen);
int ops_snapshot_delete(struct mountd *md, const char *snap, char *err,
			size_t errlen);
/* templates (templates.c) */
int ops_template_import(struct mountd *md, const char *name, char *err,
			size_t errlen);
int ops_template_delete(struct mountd *md, const char *name, char *err,
			size_t errlen);
void ops_template_usage(struct mountd *md);

#endif
