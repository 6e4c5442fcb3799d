/* Keeping the model in step with libvirt: loading at start, adopting our
 * domains, following lifecycle events (not polling).  */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mountd/priv.h"

/* True when process pid holds the master side of pty number n (the
 * kernel shows a /dev/ptmx descriptor's "tty-index" in fdinfo). */
static bool holds_pty(pid_t pid, unsigned n)
{
	char path[64], link[32], line[64];
	struct dirent *de;
	bool found = false;
	DIR *d;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = pid > 0 ? opendir(path) : NULL;
	while (d && !found && (de = readdir(d))) {
		ssize_t l;

		snprintf(path, sizeof(path), "/proc/%d/fd/%.16s", (int)pid,
			 de->d_name);
		l = readlink(path, link, sizeof(link) - 1);
		if (l <= 0)
			continue;
		link[l] = '\0';
		if (strcmp(link, "/dev/ptmx") && strcmp(link, "/dev/pts/ptmx"))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fdinfo/%.16s", (int)pid,
			 de->d_name);
		f = fopen(path, "re");
		while (f && !found && fgets(line, sizeof(line), f)) {
			unsigned idx;

			found = sscanf(line, "tty-index: %u", &idx) == 1 &&
				idx == n;
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

/* QEMU's serial pty is libvirt-qemu's, 0620 to the tty group: the VM's
 * owner gets it (and nobody else), as with a login's terminal.  The pty
 * is pinned first and given only while this VM's QEMU still holds it: a
 * number freed by a QEMU that just exited may already be someone else's
 * terminal. */
static void give_console(const char *name, const char *pty, pid_t qemu,
			 uid_t owner)
{
	char self[64];
	struct stat st;
	unsigned n;
	int fd;

	if (sscanf(pty, "/dev/pts/%u", &n) != 1)
		return;
	fd = open(pty, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	if (fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) &&
	    !(st.st_uid == owner && (st.st_mode & 07777) == 0600) &&
	    holds_pty(qemu, n) &&
	    (chown(self, owner, (gid_t)-1) < 0 || chmod(self, 0600) < 0))
		md_log(LOG_WARN_, "vm %s: cannot give %s to uid %u: %s", name,
		       pty, (unsigned)owner, strerror(errno));
	close(fd);
}

static bool marked(const struct core_vm *vm, enum core_verb v)
{
	const struct md_mark *m = &md_x(vm)->mark;

	return m->hold == MD_HOLD_VERB && m->verb == v;
}

static bool busy(const struct core_vm *vm)
{
	return md_x(vm)->mark.hold != MD_HOLD_NONE;
}

static void apply_info(struct mountd *md, struct core_vm *vm,
		       const struct be_info *in, time_t now)
{
	struct core_status *st = &vm->st;
	bool running = in->phase == CORE_PHASE_RUNNING ||
		in->phase == CORE_PHASE_PAUSED;

	if (running && !st->start_time)
		st->start_time = now;
	if (!running)
		st->start_time = 0;
	/* A migration shows as Migrating while the guest still runs here;
	 * a VM being created stays Creating until its create is done. */
	if (marked(vm, CORE_V_MIGRATE) && running)
		st->phase = CORE_PHASE_MIGRATING;
	else if (!marked(vm, CORE_V_CREATE))
		st->phase = in->phase;
	snprintf(st->uuid, sizeof(st->uuid), "%s", in->uuid);
	snprintf(st->accel, sizeof(st->accel), "%s", be_accel_name(md->be));
	snprintf(st->node, sizeof(st->node), "%s", md->node);
	snprintf(st->vnc_address, sizeof(st->vnc_address), "%s",
		 running ? in->vnc_address : "");
	snprintf(st->console, sizeof(st->console), "%s",
		 running ? in->console : "");
	st->qemu_pid = running ? in->pid : 0;
	st->vnc_port = running ? in->vnc_port : -1;
	snprintf(vm->vnc_password, sizeof(vm->vnc_password), "%s",
		 running ? in->vnc_password : "");
	st->cpus = in->cpus;
	st->memory = in->memory;
	st->disk_bytes = in->disk_bytes;
	core_status_cond(st, CORE_COND_READY, in->phase == CORE_PHASE_RUNNING,
			 in->phase == CORE_PHASE_RUNNING ? "DomainRunning" :
			 in->phase == CORE_PHASE_PAUSED ? "DomainPaused" :
			 "DomainNotRunning", in->reason, now);
	core_status_cond(st, CORE_COND_DISK_READY, true, "VolumesReady",
			 "all disks exist in the pool", now);
	core_status_cond(st, CORE_COND_NETWORK_READY, true, "InterfacesDefined",
			 "", now);
	core_status_cond(st, CORE_COND_AGENT_CONNECTED, in->agent_connected,
			 in->agent_connected ? "AgentConnected" :
			 in->has_agent_channel ? "AgentNotConnected" : "NoAgentChannel",
			 "", now);
}

static void mark_missing(struct core_vm *vm, time_t now)
{
	/* The reconciler refused this spec: its condition says why. */
	if (!md_x(vm)->defined_gen && md_x(vm)->refused_gen == vm->spec_gen)
		return;
	if (!md_x(vm)->defined_gen) {
		/* Claimed but not defined here yet: on its way, not lost. */
		vm->st.phase = CORE_PHASE_PENDING;
		core_status_cond(&vm->st, CORE_COND_READY, false, "NotDefined",
				 "the domain is being defined on this node", now);
		return;
	}
	vm->st.phase = CORE_PHASE_FAILED;
	vm->st.qemu_pid = 0;
	vm->st.start_time = 0;
	core_status_cond(&vm->st, CORE_COND_READY, false, "DomainMissing",
			 "the libvirt domain is not defined", now);
}

/* A stop nobody asked for: say so, and either plan a restart (HA) or
 * record that the VM is meant to be off, so a daemon restart keeps it
 * off.  *due gets the restart's time. */
static enum core_action outside_stop(struct mountd *md, struct core_vm *vm,
				     enum core_phase was, const char *reason,
				     time_t ran_since, time_t *due)
{
	bool crashed = vm->st.phase == CORE_PHASE_FAILED ||
		!strcmp(reason, "crashed");
	time_t now = time(NULL);
	enum core_action act;

	if (busy(vm) || !(was == CORE_PHASE_RUNNING ||
				     was == CORE_PHASE_PAUSED))
		return CORE_ACT_NONE;
	if (vm->st.phase != CORE_PHASE_STOPPED && vm->st.phase != CORE_PHASE_FAILED)
		return CORE_ACT_NONE;
	act = core_on_unexpected_stop(&vm->spec, crashed);
	if (act != CORE_ACT_START) {
		core_model_event(md->m, vm, crashed ? "Crashed" : "StoppedOutside",
				 "domain stopped outside hypersdk (%s)", reason);
		return act;
	}
	*due = md_restart_plan(md, vm, ran_since, now);
	core_model_event(md->m, vm, crashed ? "Crashed" : "StoppedOutside",
			 "domain stopped outside hypersdk (%s); restart %u in "
			 "%lds (highAvailability)", reason, vm->st.restarts + 1,
			 (long)(*due - now));
	return act;
}

void md_refresh(struct mountd *md, const char *name)
{
	char err[CORE_ERR_MAX];
	struct be_info in;
	struct core_vm *vm;
	enum core_phase was;
	enum core_action act = CORE_ACT_NONE;
	time_t ran_since, due = 0;
	bool turn_off = false;
	char pty[sizeof(in.console)];
	pid_t qemu;
	uid_t owner;
	/* Numbered before libvirt is asked: a read that was overtaken by a
	 * newer one (a verb's read-back while the reconciler waited for the
	 * lock) must not put an older state back. */
	uint64_t seq = ++md->info_seq;
	int rc = be_info(md->be, name, &in, err, sizeof(err));
	time_t now = time(NULL);

	core_model_wrlock(md->m);
	vm = core_model_find(md->m, name);
	if (vm && seq < md_x(vm)->info_seq)
		vm = NULL;
	else if (vm)
		md_x(vm)->info_seq = seq;
	/* In a cluster, another node's VM has its status from its owner. */
	if (!vm || (rc < 0 && rc != -ENOENT) ||
	    (rc == -ENOENT && busy(vm)) ||
	    (md->sync && strcmp(vm->st.node, md->node) != 0)) {
		core_model_unlock(md->m);
		return;
	}
	was = vm->st.phase;
	ran_since = vm->st.start_time;
	if (rc == -ENOENT)
		mark_missing(vm, now);
	else
		apply_info(md, vm, &in, now);
	md_restart_show(vm, now);
	md_carbon_show(vm, now);
	if (was != vm->st.phase)
		core_model_event(md->m, vm, "PhaseChanged", "%s -> %s (%s)",
				 core_phase_name(was), core_phase_name(vm->st.phase),
				 rc == 0 ? in.reason : "undefined");
	act = outside_stop(md, vm, was, rc == 0 ? in.reason : "undefined",
			   ran_since, &due);
	/* Only a stop seen happening counts: at start-up the previous phase
	 * is Unknown, and spec.running then decides (start_if_wanted). */
	turn_off = act == CORE_ACT_NONE && vm->spec.running &&
		   !busy(vm) &&
		   (was == CORE_PHASE_RUNNING || was == CORE_PHASE_PAUSED) &&
		   (vm->st.phase == CORE_PHASE_STOPPED || vm->st.phase == CORE_PHASE_FAILED);
	core_model_status_changed(md->m, vm);
	owner = vm->owner;
	qemu = vm->st.qemu_pid;
	snprintf(pty, sizeof(pty), "%s", vm->st.console);
	core_model_unlock(md->m);
	core_model_flush(md->m);
	give_console(name, pty, qemu, owner);
	md_nodes_dirty(md);
	if (turn_off)
		md_set_running(md, name, false);
	else if (act == CORE_ACT_START)
		md_nq_put_at(&md->work.q, name, due);
}

/* ---- the reconciler -------------------------------------------------- */

void md_queue(struct mountd *md, const char *name)
{
	md_nq_put(&md->work.q, name);
}

void md_queue_status(struct mountd *md, const char *name)
{
	md_nq_put(&md->status.q, name);
}

struct namelist {
	char **names;
	size_t n;
};

static int collect_name(struct core_vm *vm, void *arg)
{
	struct namelist *l = arg;

	l->names[l->n] = strdup(vm->name);
	if (l->names[l->n])
		l->n++;
	return 0;
}

static void names_of_all(struct mountd *md, struct namelist *l)
{
	core_model_rdlock(md->m);
	l->names = calloc(core_model_count(md->m) + 1, sizeof(char *));
	if (l->names)
		core_model_each(md->m, collect_name, l);
	core_model_unlock(md->m);
}

static int adopt_one(const char *name, const char *ns, const char *uid,
		     json_object *spec, void *arg);

/* A domain of ours the model does not know: migrated in from a peer. */
static void adopt_new(struct mountd *md, const char *name)
{
	struct md_vm v;

	if (md->sync || md_vm_get(md, name, &v) == 0)
		return;
	be_list(md->be, adopt_one, md);
}

/* An action that reads the domain itself once libvirt is done (a start,
 * a pause, a forced stop: the ones that do not wait for the guest). */
static bool reads_back(struct md_mark m)
{
	return m.hold == MD_HOLD_VERB &&
	       (m.verb == CORE_V_START || m.verb == CORE_V_PAUSE ||
		m.verb == CORE_V_RESUME || (m.verb == CORE_V_STOP && m.force));
}

/* What libvirt's events say (now) is in status already, or the action
 * that caused them will read the domain when it is done: a second
 * lookup would tell nothing new. */
static bool known_already(const struct md_vm *v, enum core_phase now)
{
	if (now == CORE_PHASE_UNKNOWN)
		return false;
	if (v->phase == now)
		return true;
	return reads_back(v->mark) &&
	       (core_op(v->mark.verb)->to & (1u << now));
}

/* libvirt's events about name. */
static void look_at(struct mountd *md, const char *name, enum core_phase now)
{
	struct md_vm v;
	bool known = md_vm_get(md, name, &v) == 0;

	if (!known)
		adopt_new(md, name);
	if (!known || !known_already(&v, now))
		md_refresh(md, name);
	md_restart_if_due(md, name);
	md_carbon_if_due(md, name);
	if (md->sync)
		md_cluster_reconcile(md, name);
}

static void refresh_all(struct mountd *md)
{
	struct namelist l = { 0 };

	names_of_all(md, &l);
	for (size_t i = 0; i < l.n; i++) {
		md_refresh(md, l.names[i]);
		free(l.names[i]);
	}
	free(l.names);
}

void md_follow_init(struct mountd *md)
{
	md->work.one = look_at;
	md->work.all = refresh_all;
	md->work.batch_done = md_nodes_flush;
}

/* ---- loading -------------------------------------------------------- */

static int load_one(const char *file, json_object *obj, void *arg)
{
	struct mountd *md = arg;
	json_object *meta, *spec, *status, *v;
	const char *name, *ns = "default", *uid = "", *created = "";
	char err[CORE_ERR_MAX];
	struct core_vm *vm;
	int rc;

	if (!json_object_object_get_ex(obj, "metadata", &meta) ||
	    !json_object_object_get_ex(meta, "name", &v) ||
	    !json_object_object_get_ex(obj, "spec", &spec)) {
		md_log(LOG_WARN_, "store: %s: not a VirtualMachine; skipped", file);
		return 0;
	}
	name = json_object_get_string(v);
	if (json_object_object_get_ex(meta, "namespace", &v))
		ns = json_object_get_string(v);
	if (json_object_object_get_ex(meta, "uid", &v))
		uid = json_object_get_string(v);
	if (json_object_object_get_ex(meta, "creationTimestamp", &v))
		created = json_object_get_string(v);
	core_model_wrlock(md->m);
	rc = core_model_add(md->m, name, ns, uid, created, json_object_get(spec),
			    &vm, err, sizeof(err));
	if (rc == 0)
		vm->owner = core_owner_from_object(obj);
	if (rc == 0 && json_object_object_get_ex(obj, "status", &status))
		core_status_from_json(status, &vm->st);
	if (rc == 0) {
		/* libvirt tells the phase; the stored one only seeds status. */
		vm->st.operation[0] = '\0';
		vm->st.phase = CORE_PHASE_UNKNOWN;
	}
	core_model_unlock(md->m);
	if (rc < 0) {
		json_object_put(spec);
		md_log(LOG_WARN_, "store: %s: %s; skipped", file, err);
	}
	return 0;
}

/* A domain of ours that the store does not know (its state directory was
 * lost): its metadata carries the spec, so it comes back whole. */
static int adopt_one(const char *name, const char *ns, const char *uid,
		     json_object *spec, void *arg)
{
	struct mountd *md = arg;
	char err[CORE_ERR_MAX], created[32];
	struct core_vm *vm;
	json_object *copy = NULL;
	struct md_vm v;
	int rc;

	if (md_vm_get(md, name, &v) == 0 || !spec ||
	    json_object_deep_copy(spec, &copy, NULL) < 0)
		return 0;
	core_rfc3339(time(NULL), created, sizeof(created));
	core_model_wrlock(md->m);
	rc = core_model_add(md->m, name, ns && *ns ? ns : "default",
			    uid ? uid : "", created, copy, &vm, err, sizeof(err));
	if (rc == 0)    /* its metadata names this node */
		snprintf(vm->st.node, sizeof(vm->st.node), "%s", md->node);
	core_model_unlock(md->m);
	if (rc < 0) {
		json_object_put(copy);
		md_log(LOG_WARN_, "domain %s: %s; not adopted", name, err);
		return 0;
	}
	md_log(LOG_INFO_, "adopted domain %s from its metadata", name);
	md_persist(md, name);
	return 0;
}

/* A stored VM whose domain is gone is defined again (stopped). */
static void redefine_missing(struct mountd *md, struct namelist *l)
{
	char err[CORE_ERR_MAX];
	struct be_info in;

	for (size_t i = 0; i < l->n; i++) {
		if (!md_owned(md, l->names[i], NULL, 0) ||
		    be_info(md->be, l->names[i], &in, err, sizeof(err)) != -ENOENT)
			continue;
		md_log(LOG_WARN_, "domain %s is missing; defining it again",
		       l->names[i]);
		if (md_redefine(md, l->names[i], err, sizeof(err)) < 0)
			md_log(LOG_ERR_, "define %s: %s", l->names[i], err);
	}
}

/* At start-up spec.running is the desired state: a VM meant to run that
 * is off (the host rebooted, or its domain was lost) is started. */
static void start_if_wanted(struct mountd *md, const char *name)
{
	struct core_ctl msg = { .verb = CORE_V_START };
	char err[CORE_ERR_MAX] = "";
	struct md_vm v;

	/* In a cluster, only the owner starts a VM (its reconciler will). */
	if (md->sync || md_vm_get(md, name, &v) < 0 || !v.want_running ||
	    !((1u << v.phase) & MD_INACTIVE))
		return;
	if (md_restart_waiting(&v, time(NULL))) {
		md_nq_put_at(&md->work.q, name, v.next_restart);
		return;
	}
	md_log(LOG_INFO_, "vm %s should run; starting it", name);
	if (md_do(md, name, &msg, err, sizeof(err)) < 0)
		md_log(LOG_WARN_, "start %s: %s", name, err);
}

int md_load(struct mountd *md, char *err, size_t errlen)
{
	struct namelist l = { 0 };
	int rc;

	rc = core_store_list(md->store, "vms", load_one, md);
	if (rc < 0) {
		snprintf(err, errlen, "cannot read the store: %s", strerror(-rc));
		return rc;
	}
	rc = be_list(md->be, adopt_one, md);
	if (rc < 0) {
		snprintf(err, errlen, "cannot list libvirt domains: %s",
			 strerror(-rc));
		return rc;
	}
	names_of_all(md, &l);
	redefine_missing(md, &l);
	for (size_t i = 0; i < l.n; i++) {
		md_refresh(md, l.names[i]);
		start_if_wanted(md, l.names[i]);
		/* A start that waited when the daemon stopped: its deadline,
		 * or no provider any more. */
		if (!md->sync)
			md_carbon_if_due(md, l.names[i]);
		free(l.names[i]);
	}
	free(l.names);
	core_model_flush(md->m);
	md_update_nodes(md, false);
	return 0;
}
