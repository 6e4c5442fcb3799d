/* Helpers of the backend integration checks be_smoke and be_ops (whose
 * checks are spread over be_ops.c, be_clone.c, be_migrate.c and
 * be_image.c): TAP output, commands without a shell, and the pool, folders
 * and names of one run. */
#ifndef HYPERSDK_BE_TEST_H
#define HYPERSDK_BE_TEST_H

#include <stdbool.h>
#include <stddef.h>

#include <libvirt/libvirt.h>

#include "backend/backend.h"

#define URI "qemu:///system"
/* scripts/libvirt-node2.sh uri: TLS with the client certificate it made */
#define URI2 "qemu+tls://127.0.0.2:16514/system?pkipath=" \
	     "/var/lib/hypersdk-node2-tls/pki/client"

/* ---- be_test.c: both programs ---- */

extern int ntest, nfail;
extern char pool[64], pooldir[128], tmpdir[64];

__attribute__((format(printf, 2, 3)))
void ok(bool cond, const char *fmt, ...);
void skip(const char *why, const char *what);
char *E(char *err);
int run(char *out, size_t len, char *const argv[]);
int virsh(char *out, size_t len, const char *uri, const char *a1,
	  const char *a2);
void domstate(const char *uri, const char *vm, char *out, size_t len);
void drop_pool(virConnectPtr vc);
/* Skip the whole program (a TAP plan of 0, false) without root or
 * libvirtd; else make tmpdir from the mkdtemp template tmpl, with pooldir
 * under it. */
bool setup(const char *tmpl);
/* Remove tmpdir, print the plan; the exit status. */
int finish(void);

/* ---- be_test.c: be_ops's files ---- */

extern char pfx[32], top[512];
extern int max_pct;

void on_progress(void *arg, int pct, const char *msg);
void name(char *out, size_t len, const char *what);
int define64(struct be_conn *c, const char *vm, char *err, size_t len);
/* define64, then start it. */
int start64(struct be_conn *c, const char *vm, char *err, size_t len);
int backing_of(const char *vm, char *out, size_t len);

/* ---- be_clone.c, be_migrate.c, be_image.c ---- */

void clone_checks(struct be_conn *c);
void migrate_checks(const struct be_config *cfg, struct be_conn *c);
void image_checks(struct be_conn *c);
/* The HTTP server of image_checks, if it still runs. */
void http_stop(void);

#endif
