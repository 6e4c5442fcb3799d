/* Shared by the operations engine's files only (ops.c, opsrun.c,
 * opverbs.c, templates.c); the daemon sees mountd.h. */
#ifndef HYPERSDK_MOUNTD_OPS_H
#define HYPERSDK_MOUNTD_OPS_H

#include <stdarg.h>

#include "mountd/mountd.h"

enum { OPS_CANCEL_USER = 1, OPS_CANCEL_TIMEOUT = 2 };

struct progress_ctx;

enum sync_kind ops_sync_kind(enum core_kind k);
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

/* opverbs.c: each runs with the VM marked busy; 0 or -errno with err.
 * o is a private copy of the VMOperation. */
int ops_do_clone(struct mountd *md, const char *op, json_object *o,
		 struct md_run *run, char *err, size_t errlen);
int ops_do_migrate(struct mountd *md, const char *op, json_object *o,
		   struct md_run *run, char *err, size_t errlen);
int ops_do_resize(struct mountd *md, const char *op, json_object *o,
		  char *err, size_t errlen);
int ops_do_revert(struct mountd *md, const char *op, json_object *o,
		  char *err, size_t errlen);
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
