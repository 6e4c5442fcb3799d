/* fakebe: an in-memory backend/backend.h for unit tests of the daemon,
 * without root, libvirt or QEMU.  Link fakebe_dep instead of backend_dep.
 *
 * Every be_* call behaves as the real backend documents it and as its
 * libvirt calls make it behave: the same -errno and err text in the same
 * "<verb> <name>: <message>" form (libvirt's own messages where the real
 * backend passes them on, e.g. "start a: Requested operation is not
 * valid: domain is already running", -EBUSY).
 *
 * Hosts: each URI given to be_open (or fakebe_add_host) is one fake
 * libvirtd with its own domains, volumes and pools; two be_open with the
 * same URI share it, as two daemons sharing one libvirtd do.  A domain
 * carries the node of the connection that defined it, and be_list,
 * be_stats_all, be_undefine and be_migrate see only their node's, like the
 * real backend.  The fake host has 8 CPUs and 16 GiB (default maxima),
 * no usable /dev/kvm unless fakebe_set_kvm says so.
 *
 * Events: be_watch's fn is called from the fake's own thread, one call
 * per change, for every watching connection of the host where it
 * happened.  be_shutdown only queues the guest's power-off on that thread
 * too (it returns at once, as ACPI does); fakebe_settle waits for all of
 * it.  Nothing is called back with a lock of the fake held.
 *
 * be_info of a running domain: a pid above any pid_max (never a real
 * process), VNC ports from 5900 on 127.0.0.1 with an 8-character
 * password kept across redefines, console "/dev/pts/fakeN" (no real pty
 * to hand to anyone).
 *
 * Controls below take a host's URI (NULL: qemu:///system, be_open's
 * default) and return 0 or -errno: -ENOENT for no such host or domain,
 * -EBUSY for a domain in the wrong state. */
#ifndef HYPERSDK_TESTS_FAKEBE_H
#define HYPERSDK_TESTS_FAKEBE_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"

/* One per be_* function that talks to the (fake) host.  The pure ones
 * (be_url_redact, be_imgprobe, be_domain_xml) are not counted. */
enum fakebe_op {
	FAKEBE_OP_OPEN,
	FAKEBE_OP_CLOSE,
	FAKEBE_OP_ACCEL_NAME,
	FAKEBE_OP_CONN_ALIVE,
	FAKEBE_OP_DEFINE,
	FAKEBE_OP_BOOT_CHECK,
	FAKEBE_OP_START,
	FAKEBE_OP_SHUTDOWN,
	FAKEBE_OP_DESTROY,
	FAKEBE_OP_SUSPEND,
	FAKEBE_OP_RESUME,
	FAKEBE_OP_UNDEFINE,
	FAKEBE_OP_FORGET,
	FAKEBE_OP_INFO,
	FAKEBE_OP_LIST,
	FAKEBE_OP_STATS_ALL,
	FAKEBE_OP_WATCH,
	FAKEBE_OP_CLONE,
	FAKEBE_OP_LINKED_DEPENDENTS,
	FAKEBE_OP_SNAPSHOT_CREATE,
	FAKEBE_OP_SNAPSHOT_REVERT,
	FAKEBE_OP_SNAPSHOT_DELETE,
	FAKEBE_OP_SNAPSHOT_INFO,
	FAKEBE_OP_SNAPSHOT_LIST,
	FAKEBE_OP_RESIZE,
	FAKEBE_OP_LIMITS,
	FAKEBE_OP_MIGRATE,
	FAKEBE_OP_IMPORT_SET,
	FAKEBE_OP_IMAGE_IMPORT,
	FAKEBE_OP_IMAGE_DELETE,
	FAKEBE_OP_VOLUME_FROM_IMAGE,
	FAKEBE_OP_COUNT
};

/* The be_* name of op ("be_start"). */
const char *fakebe_op_name(enum fakebe_op op);

/* Forget every host, domain, volume, image source, counter and armed
 * failure; waits for queued events first (fakebe_settle) and stops the
 * event thread.  Connections still open keep working on their old hosts,
 * which no new be_open reaches; close them before or after, as you like.
 * Not from a be_watch callback. */
void fakebe_reset(void);

/* The next call of op returns rc (negative errno) with err as its err
 * text (NULL: "<be_name>: injected failure"), before it does anything.
 * Arming op again replaces the pending failure.  -EINVAL when op cannot
 * fail (be_close, be_accel_name, be_conn_alive) or rc is not negative. */
int fakebe_fail(enum fakebe_op op, int rc, const char *err);
/* Calls of op since the last reset, failed ones included. */
unsigned long fakebe_calls(enum fakebe_op op);

/* Wait until every queued notification has been delivered and every
 * queued guest power-off has happened, including what those caused.
 * Returns at once when called from a be_watch callback. */
void fakebe_settle(void);
/* be_watch calls made since the last reset. */
unsigned long fakebe_notified(void);

/* A host that can be reached (be_migrate's target) without anyone having
 * opened it; harmless when it exists. */
int fakebe_add_host(const char *uri);
/* libvirtd of uri stops answering (down) or comes back.  Its connections
 * fail with -EIO ("libvirt at URI does not answer: ...") and
 * be_conn_alive is false; the first call after it came back reconnects
 * and calls the watcher with name NULL ("re-read everything"). */
int fakebe_set_down(const char *uri, bool down);
/* Whether be_open finds /dev/kvm usable on uri (BE_ACCEL_AUTO then picks
 * "kvm"; BE_ACCEL_KVM without it is -EOPNOTSUPP).  Default false. */
int fakebe_set_kvm(const char *uri, bool usable);

/* The guest of a running or paused domain crashes: shut off, reason
 * "crashed", phase Failed (QEMU's on_crash is destroy). */
int fakebe_crash(const char *uri, const char *name);
/* The guest powers itself off: shut off, reason "shutdown". */
int fakebe_poweroff(const char *uri, const char *name);
/* The guest ignores ACPI power buttons: be_shutdown still returns 0 but
 * the domain keeps running. */
int fakebe_ignore_acpi(const char *uri, const char *name, bool ignore);
/* Whether the guest agent answers (be_info's agent_connected, quiesced
 * snapshots).  By default it does whenever the domain runs and its spec
 * has guestAgent. */
int fakebe_set_agent(const char *uri, const char *name, bool connected);
/* A stopped libvirt domain without hypersdk metadata (someone else's):
 * be_define of that name is -EEXIST, be_list skips it. */
int fakebe_add_foreign(const char *uri, const char *name);
/* The text be_stats_all reports for name ("key value" lines), instead of
 * the default cpu.time_ns, vcpus, memory.*, block.<dev>.capacity_bytes
 * lines; NULL goes back to the default. */
int fakebe_set_stats(const char *uri, const char *name, const char *txt);

/* What be_image_import finds at source (a URL as given, or a local file
 * by its path, which a file:// source finds too):
 * an image of virtual size vsize whose checksum is checksum
 * ("sha256:HEX", or NULL: any checksum asked for mismatches).  Sources
 * not added are HTTP 404 (a URL) or missing files (a path). */
int fakebe_add_image(const char *source, uint64_t vsize, const char *checksum);

/* A volume of host uri by its path or its name in any pool: capacity and
 * backing file path ("" for none; backing may be NULL).  -ENOENT when
 * there is none. */
int fakebe_volume(const char *uri, const char *vol, uint64_t *capacity,
		  char *backing, size_t blen);
/* The node in the metadata of domain name on host uri (where a migration
 * put it); "" for a foreign domain. */
int fakebe_domain_node(const char *uri, const char *name, char *node,
		       size_t len);

#endif
