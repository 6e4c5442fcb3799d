/* backend: libvirt/QEMU.  Domain XML from a spec, storage pool and volumes,
 * cloud-init seed images, lifecycle, stats and lifecycle events.  The only
 * module that includes <libvirt/...>.
 *
 * Every call is thread-safe (libvirt connections are), returns 0 or
 * -errno and puts a one-line reason for users into err.  Calls reconnect
 * once when libvirtd went away and came back. */
#ifndef HYPERSDK_BACKEND_H
#define HYPERSDK_BACKEND_H

#include "core/core.h"

enum be_accel {
	BE_ACCEL_AUTO,  /* kvm when /dev/kvm is usable by libvirt, else tcg */
	BE_ACCEL_KVM,
	BE_ACCEL_TCG,
};

struct be_config {
	const char *uri;        /* qemu:///system */
	const char *pool_dir;   /* disk images, a libvirt dir pool */
	const char *pool_name;  /* default "hypersdk" */
	const char *node;       /* written into each domain's metadata */
	enum be_accel accel;
};

struct be_conn;

/* Connect, check that libvirt answers, pick the accelerator, make sure
 * the dir pool exists and is active.  Fails with a one-line reason (for
 * example "libvirt at qemu:///system does not answer: ..."). */
int be_open(const struct be_config *cfg, struct be_conn **out, char *err,
	    size_t errlen);
void be_close(struct be_conn *c);
/* "kvm" or "tcg", as chosen by be_open. */
const char *be_accel_name(const struct be_conn *c);

/* What libvirt says about a domain now. */
struct be_info {
	enum core_phase phase;  /* Running, Paused, Stopped, Failed (crashed) */
	char reason[32];        /* libvirt's state reason: booted, shutdown,
				 * destroyed, crashed, user, ... */
	char uuid[40];
	int pid;                /* QEMU pid, 0 when not running */
	int vnc_port;           /* -1 when none */
	char vnc_address[64];
	char console[256];      /* serial console pty path when running */
	int cpus;
	uint64_t memory;        /* bytes */
	uint64_t disk_bytes;    /* sum of volume capacities */
	bool has_agent_channel;
	bool agent_connected;
};

/* Create what does not exist yet: volumes <name>_<disk>.qcow2 in the pool,
 * the cloud-init NoCloud seed image when the spec has cloudInit, and the
 * persistent domain with a <hypersdk:vm> metadata element (namespace,
 * uid, node and the spec JSON).  Redefines the domain when it exists (the
 * new XML applies at next start).  Idempotent; on failure removes what
 * this call created. */
int be_define(struct be_conn *c, const char *name, const char *ns,
	      const char *uid, const struct core_spec *spec,
	      json_object *spec_json, char *err, size_t errlen);

int be_start(struct be_conn *c, const char *name, char *err, size_t errlen);
/* Ask the guest to power off (ACPI); returns at once. */
int be_shutdown(struct be_conn *c, const char *name, char *err,
		size_t errlen);
/* Pull the plug. */
int be_destroy(struct be_conn *c, const char *name, char *err,
	       size_t errlen);
int be_suspend(struct be_conn *c, const char *name, char *err,
	       size_t errlen);
int be_resume(struct be_conn *c, const char *name, char *err, size_t errlen);
/* Undefine the domain and remove its volumes and seed image.  -EBUSY
 * while it runs. */
int be_undefine(struct be_conn *c, const char *name, char *err,
		size_t errlen);

/* -ENOENT when there is no such domain. */
int be_info(struct be_conn *c, const char *name, struct be_info *out,
	    char *err, size_t errlen);

/* Call fn for each domain with hypersdk metadata (others are skipped).
 * spec_json is borrowed for the call; NULL when the metadata has none. */
int be_list(struct be_conn *c,
	    int (*fn)(const char *name, const char *ns, const char *uid,
		      json_object *spec_json, void *arg),
	    void *arg);

/* Stats of every running hypersdk domain in one libvirt call, rendered as
 * flat "key value" lines (cpu.time_ns, vcpus, memory.actual_bytes,
 * memory.rss_bytes, block.<dev>.rd_bytes, ..., net.<dev>.rx_bytes, ...). */
int be_stats_all(struct be_conn *c,
		 void (*fn)(const char *name, const char *txt, size_t len,
			    void *arg),
		 void *arg);

/* Register for lifecycle events and run libvirt's event loop in a thread
 * of the backend.  fn(name) is called from that thread whenever a domain
 * changed state (started, stopped, paused, crashed, undefined, ...); the
 * receiver re-reads be_info.  Also called with name NULL after a
 * reconnect, meaning "re-read everything". */
int be_watch(struct be_conn *c, void (*fn)(void *arg, const char *name),
	     void *arg);

/* Pure: the domain XML for a spec (exposed for unit tests).  Caller
 * frees.  disk_paths[i] is the volume path of spec->disks[i]; seed_iso
 * may be NULL; network is the libvirt network name or NULL for user
 * networking. */
struct be_xml_params {
	const char *name;
	const char *ns;
	const char *uid;
	const char *node;
	const char *domain_type;        /* "kvm" or "qemu" */
	const struct core_spec *spec;
	const char *spec_json;          /* text stored in the metadata */
	const char *const *disk_paths;
	const char *seed_iso;
	const char *network;
	const char *uuid;               /* domain UUID to keep on redefine;
					 * NULL: uid when it is a UUID */
};
char *be_domain_xml(const struct be_xml_params *p);

#endif
