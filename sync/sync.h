/* sync: the Kubernetes side.  Credentials (kubeconfig as kubectl reads it,
 * or in-cluster service account), HTTP with libcurl and TLS verification,
 * list+watch per kind with resourceVersion, bookmarks and relist on 410,
 * reconnect with backoff and jitter, merge patches to spec, the status
 * subresource, optimistic claims, node leases, and a durable outbox used
 * while the API server is unreachable.  Knows nothing of FUSE or libvirt;
 * mountd wires it to the model.
 *
 * Functions return 0 or -errno with a one-line reason in err.  Errnos:
 * -ENOENT 404, -EEXIST 409 AlreadyExists, -EBUSY 409 Conflict (stale
 * resourceVersion), -EACCES 401/403, -EINVAL 400/422 (err has the API
 * server's message), -EAGAIN queued in the outbox (server unreachable),
 * -EHOSTUNREACH server unreachable for calls that are never queued
 * (create, delete, get, claim, nodes; also 429 and 502-504 answers),
 * -EIO otherwise. */
#ifndef HYPERSDK_SYNC_H
#define HYPERSDK_SYNC_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/core.h"

/* Kinds of CORE_API_VERSION. */
enum sync_kind {
	SYNC_VM,                /* virtualmachines */
	SYNC_OPERATION,         /* vmoperations */
	SYNC_TEMPLATE,          /* vmtemplates */
	SYNC_SNAPSHOT,          /* vmsnapshots */
	SYNC_KIND_COUNT,
};
const char *sync_kind_name(enum sync_kind k);      /* "VirtualMachine" */
const char *sync_kind_plural(enum sync_kind k);    /* "virtualmachines" */
/* The one mapping between the model's object kinds and the API's, so the
 * two enums cannot drift apart where they are wired together.  A kind
 * out of range gives the other enum's COUNT, and so does SYNC_VM (the
 * model keeps VMs as core_vm, not core_obj); every sync_* call refuses
 * SYNC_KIND_COUNT with -EINVAL. */
enum sync_kind sync_kind_of(enum core_kind k);
enum core_kind sync_core_kind(enum sync_kind k);

/* A DNS-1123 subdomain, as Kubernetes names objects and nodes (so it is
 * also safe in a URL path). */
bool sync_name_ok(const char *name);

/* ---- credentials ---------------------------------------------------- */

struct sync_creds {
	char *server;           /* https://127.0.0.1:6443 */
	char *ca_file;          /* PEM file; NULL = system CAs */
	char *ca_pem;           /* inline certificate-authority-data, decoded */
	char *cert_file, *key_file;     /* client certificate */
	char *cert_pem, *key_pem;       /* inline client-*-data, decoded */
	char *token;            /* bearer token (or token-file contents) */
	char *token_file;       /* tokenFile / the service account token:
				 * re-read when it changes (rotation) */
	char *ns;               /* the context's namespace, or NULL */
	bool insecure;          /* insecure-skip-tls-verify: refused unless
				 * HYPERSDK_ALLOW_INSECURE=1 */
};

/* Parse a kubeconfig (YAML) as kubectl does: the given file, else the
 * files of $KUBECONFIG merged (the first to name a cluster, user or
 * context wins; the first current-context; missing files skipped), else
 * ~/.kube/config; the context given or current-context; relative paths
 * resolved against their own file's folder.  Pure except for reading
 * files.  Credential plugins (exec, auth-provider), basic auth,
 * impersonation, proxy-url and tls-server-name are refused (-EOPNOTSUPP)
 * rather than ignored. */
int sync_kubeconfig_load(const char *path, const char *context,
			 struct sync_creds *out, char *err, size_t errlen);
/* Parse kubeconfig text (for tests and fuzzing); dir resolves relative
 * paths. */
int sync_kubeconfig_parse(const char *text, size_t len, const char *dir,
			  const char *context, struct sync_creds *out,
			  char *err, size_t errlen);
/* In-cluster: KUBERNETES_SERVICE_HOST/PORT, the service account token,
 * CA and namespace under /var/run/secrets/kubernetes.io/serviceaccount
 * (or $HYPERSDK_SA_DIR, for tests). */
int sync_incluster_load(struct sync_creds *out, char *err, size_t errlen);
void sync_creds_free(struct sync_creds *c);

/* ---- watch events (pure, for tests and fuzzing) --------------------- */

enum sync_event_type {
	SYNC_EV_ADDED,
	SYNC_EV_MODIFIED,
	SYNC_EV_DELETED,
	SYNC_EV_BOOKMARK,
	SYNC_EV_ERROR,          /* object is a Status; code 410 = relist */
};

/* Decode one line of a watch stream.  *obj is a new reference. */
int sync_event_decode(const char *line, size_t len, enum sync_event_type *type,
		      json_object **obj, char *err, size_t errlen);

/* ---- one read, without a client ------------------------------------- */

/* GET the list of a kind in namespace ns (NULL: the credentials'
 * namespace, else "default") with the credentials alone: no sync_open,
 * so no CRD check, watch, lease or outbox, for a command that reads once
 * and exits.  *out: the List (new reference); its "items" is an array
 * (-EIO otherwise).  Errnos as above; -EHOSTUNREACH when the server
 * does not answer. */
int sync_list(const struct sync_creds *c, enum sync_kind k, const char *ns,
	      json_object **out, char *err, size_t errlen);

/* ---- the client ------------------------------------------------------ */

struct sync_handler {
	/* Called from sync's threads, serially per kind, in order.  Objects
	 * are borrowed: deep-copy what you keep (json-c reference counts
	 * are not atomic and sync keeps its own reference).  A callback may
	 * call sync_* functions, except sync_close. */
	/* An object was listed, added or modified (borrowed reference). */
	void (*upsert)(void *arg, enum sync_kind k, json_object *obj);
	/* An object was deleted (borrowed; the last state known). */
	void (*remove)(void *arg, enum sync_kind k, json_object *obj);
	/* The initial list (or a relist) of a kind is complete: objects
	 * not upserted since the list began are gone. */
	void (*synced)(void *arg, enum sync_kind k);
	/* The API server became reachable (true) or unreachable (false). */
	void (*online)(void *arg, bool up);
	/* A spec patch from the outbox was applied: rv is the object's
	 * resourceVersion with it.  Until the watch reaches rv, what it and
	 * a relist deliver predates the patch (a relist's snapshot may have
	 * been taken before the replay). */
	void (*replayed)(void *arg, enum sync_kind k, const char *name,
			 const char *rv);
};

struct sync_config {
	const struct sync_creds *creds;
	const char *ns;         /* namespace watched and written */
	const char *node;       /* this node's name */
	const char *state_dir;  /* the outbox lives in <state_dir>/outbox */
	int lease_seconds;      /* node lease duration; 0 = 15 */
	int watch_seconds;      /* a watch's timeoutSeconds, which also bounds
				 * how long a dead connection goes unnoticed;
				 * 0 = at random in 30..59 */
};

struct sync;

/* Check that the API server answers and the CRDs are installed; a clear
 * error otherwise ("... credentials refused ...", "CRD
 * virtualmachines.hypersdk.io is not installed").  A server that does not
 * answer at all is not an error: sync starts offline (sync_online false)
 * and its watches connect when it comes.  The outbox left by an earlier
 * run is loaded and pushed once started.  upsert, remove and synced come
 * once sync_start ran; online may come from any call.
 * cfg->ns NULL: the credentials' namespace, else "default". */
int sync_open(const struct sync_config *cfg, const struct sync_handler *h,
	      void *arg, struct sync **out, char *err, size_t errlen);
/* Start the watch threads (one per kind), the lease heartbeat and the
 * outbox pusher. */
int sync_start(struct sync *s);
/* Stop the threads (within about a second) and free.  No other sync_*
 * call on s may be running or follow. */
void sync_close(struct sync *s);

/* JSON merge patch (RFC 7386) of an object ({"spec": {...}}), or of its
 * status through the status subresource: status_patch is the patch of
 * .status itself ({"phase": "Running"}), sent as {"status": ...}.  When
 * the server is unreachable, or earlier patches still wait in the outbox
 * (order is kept), the patch goes to the outbox and -EAGAIN is returned
 * (it will be applied later; see sync/outbox.c for conflicts). */
int sync_patch(struct sync *s, enum sync_kind k, const char *name,
	       json_object *patch, char *err, size_t errlen);
int sync_patch_status(struct sync *s, enum sync_kind k, const char *name,
		      json_object *status_patch, char *err, size_t errlen);
/* Create an object (metadata.namespace is filled in).  *created, when
 * not NULL, gets the object as the server returned it. */
int sync_create(struct sync *s, enum sync_kind k, json_object *obj,
		json_object **created, char *err, size_t errlen);
int sync_delete(struct sync *s, enum sync_kind k, const char *name,
		char *err, size_t errlen);
/* GET one object (new reference). */
int sync_get(struct sync *s, enum sync_kind k, const char *name,
	     json_object **out, char *err, size_t errlen);

/* Claim an object for this node: set status.nodeName to cfg->node with a
 * patch guarded by resource_version.  -EBUSY when the object changed
 * since (someone else may have claimed it): re-read and decide again.
 * Never queued in the outbox. */
int sync_claim(struct sync *s, enum sync_kind k, const char *name,
	       const char *resource_version, char *err, size_t errlen);

/* Nodes: this node's Lease (coordination.k8s.io/v1, name
 * "hypersdk-node-<node>", in the watched namespace, labelled
 * hypersdk.io/node=true) is created and renewed by sync_start.  fn is
 * called for every node lease with its holder, renew time and whether it
 * is still valid. */
int sync_nodes(struct sync *s,
	       void (*fn)(void *arg, const char *node, const char *renew_time,
			  bool alive),
	       void *arg, char *err, size_t errlen);

/* Entries waiting in the outbox (for status and tests). */
size_t sync_outbox_len(struct sync *s);
/* When the oldest change waiting in the outbox was queued (0: none), so
 * now minus it is how long the server has been missing our changes. */
time_t sync_outbox_oldest(struct sync *s);
/* Whether the API server answered last time (false after an offline
 * start: sync_open succeeds when the server does not answer). */
bool sync_online(struct sync *s);

#endif
