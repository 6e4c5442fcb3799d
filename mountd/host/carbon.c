/* carbonAware: a start that waits for a greener grid.
 *
 * One thread polls the provider every --carbon-interval, backing off on
 * errors (never sooner than a 429's Retry-After), and keeps the latest
 * reading and forecast (md->grid).  Every start of a carbonAware VM asks
 * the gate: at or under maxIntensity it goes ahead; above it, or with no
 * fresh reading, the VM stays Pending with CarbonDelayed until a reading
 * under the limit, its deadline (maxDelay after the first ask), `start
 * now`, or a stop.  Each poll queues the waiting VMs for the reconciler,
 * which looks at them with md_carbon_if_due; the deadline is queued too,
 * so a provider that is down never holds a start past it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mountd/priv.h"

/* Electricity Maps' latest is the current hour, the UK's the current
 * half hour: a reading older than this is not the grid of now. */
#define AGE_MAX_S (2 * 3600)
#define BACKOFF_MAX_S 900
/* Forecasts move hourly: one request for them every ten minutes. */
#define FORECAST_EVERY_S 600

/* ---- the grid here ------------------------------------------------------ */

static unsigned interval_s(const struct mountd *md)
{
	return md->cfg.carbon_interval_s ? md->cfg.carbon_interval_s :
	       MD_CARBON_INTERVAL_S;
}

/* A reading young enough to act on: its own time within AGE_MAX_S, and
 * its poll within three periods (a cache across a short outage). */
static bool fresh(const struct mountd *md, const struct md_grid *g, time_t now)
{
	time_t keep = 3 * (time_t)interval_s(md);

	if (keep < BACKOFF_MAX_S)
		keep = BACKOFF_MAX_S;
	return g->have && now - g->polled <= keep &&
	       g->r.at <= now + 3600 && now - g->r.at <= AGE_MAX_S;
}

static void grid_copy(struct mountd *md, struct md_grid *out)
{
	pthread_mutex_lock(&md->carbon_lock);
	*out = md->grid;
	pthread_mutex_unlock(&md->carbon_lock);
}

int md_grid_now(struct mountd *md, struct md_grid_view *out)
{
	struct md_grid g;

	memset(out, 0, sizeof(*out));
	out->intensity = -1;
	if (!md->carbon)
		return -ENOSYS;
	grid_copy(md, &g);
	snprintf(out->provider, sizeof(out->provider), "%s",
		 carbon_kind_name(carbon_kind_of(md->carbon)));
	snprintf(out->zone, sizeof(out->zone), "%s",
		 g.have && g.r.zone[0] ? g.r.zone : carbon_zone(md->carbon));
	out->fresh = fresh(md, &g, time(NULL));
	if (!g.have)
		return -ENODATA;
	out->intensity = g.r.intensity;
	out->at = g.r.at;
	out->polled = g.polled;
	snprintf(out->error, sizeof(out->error), "%s", g.error);
	return 0;
}

int md_carbon_self(struct mountd *md, struct core_grid_reading *out)
{
	struct md_grid_view v;
	int rc = md_grid_now(md, &v);

	memset(out, 0, sizeof(*out));
	out->intensity = v.fresh ? v.intensity : -1;
	out->at = v.fresh ? v.at : 0;
	snprintf(out->zone, sizeof(out->zone), "%s", v.zone);
	snprintf(out->provider, sizeof(out->provider), "%s", v.provider);
	return rc == -ENOSYS ? rc : 0;
}

/* ---- what nodes/ and the Leases say ------------------------------------- */

int md_carbon_render(struct mountd *md, char *buf, size_t len)
{
	struct md_grid_view v;
	char at[32] = "-", polled[32] = "-", n[16] = "-";
	int rc = md_grid_now(md, &v);

	if (rc == 0) {
		snprintf(n, sizeof(n), "%d", v.intensity);
		core_rfc3339(v.at, at, sizeof(at));
		core_rfc3339(v.polled, polled, sizeof(polled));
	}
	return snprintf(buf, len, "carbonProvider %s\ncarbonZone %s\n"
			"carbonIntensity %s\ncarbonUpdated %s\ncarbonPolled %s\n"
			"carbonFresh %s\ncarbonError %s\n",
			rc == -ENOSYS ? "none" : v.provider,
			v.zone[0] ? v.zone : "-", n, at, polled,
			v.fresh ? "true" : "false",
			v.error[0] ? v.error : "-");
}

bool md_carbon_member_fresh(const struct md_member *m, time_t now)
{
	return m->alive && m->grid.intensity >= 0 && m->grid.at <= now + 3600 &&
	       now - m->grid.at <= AGE_MAX_S;
}

int md_carbon_render_member(const struct md_member *m, char *buf, size_t len)
{
	char at[32] = "-", n[16] = "-";

	if (m->grid.intensity >= 0) {
		snprintf(n, sizeof(n), "%d", m->grid.intensity);
		core_rfc3339(m->grid.at, at, sizeof(at));
	}
	return snprintf(buf, len, "carbonZone %s\ncarbonIntensity %s\n"
			"carbonUpdated %s\n", m->grid.zone[0] ? m->grid.zone : "-",
			n, at);
}

static void publish_one(struct mountd *md, int i, const char *key,
			const char *val)
{
	char *last = md->carbon_published[i];

	if (!strcmp(last, val ? val : ""))
		return;
	if (sync_lease_set(md->sync, key, val) == 0)
		snprintf(last, sizeof(md->carbon_published[0]), "%s",
			 val ? val : "");
}

/* Others place carbonAware VMs by it: only a fresh reading is said. */
void md_carbon_publish(struct mountd *md)
{
	struct core_grid_reading g;
	char n[16] = "", at[32] = "";

	if (!md->sync || md_carbon_self(md, &g) < 0)
		return;
	if (g.intensity >= 0) {
		snprintf(n, sizeof(n), "%d", g.intensity);
		core_rfc3339(g.at, at, sizeof(at));
	}
	publish_one(md, 0, MD_ANN_CARBON_ZONE, g.zone);
	publish_one(md, 1, MD_ANN_CARBON_INTENSITY, n[0] ? n : NULL);
	publish_one(md, 2, MD_ANN_CARBON_UPDATED, at[0] ? at : NULL);
}

/* ---- the decision ------------------------------------------------------- */

enum verdict { GO_UNAWARE, GO_NO_PROVIDER, GO_GREEN, GO_DEADLINE, GO_NOW,
	       WAIT };

struct gate {
	struct md_grid g;       /* the grid as the decision saw it */
	bool configured, now;   /* a provider; `start now` */
	time_t t;
	enum verdict v;
	time_t deadline;        /* WAIT: look again at the latest then */
	bool owned, busy;       /* md_carbon_if_due's look */
};

static enum verdict decide(const struct mountd *md, const struct gate *x,
			   const struct core_vm *vm)
{
	const struct core_spec *s = &vm->spec;
	time_t deadline = vm->st.carbon.deadline ? vm->st.carbon.deadline :
			  x->t + (time_t)s->carbon_max_delay_s;

	if (!s->carbon_aware)
		return GO_UNAWARE;
	if (!x->configured)
		return GO_NO_PROVIDER;
	if (x->now)
		return GO_NOW;
	if (fresh(md, &x->g, x->t) && x->g.r.intensity <= s->carbon_max_intensity)
		return GO_GREEN;
	return x->t >= deadline ? GO_DEADLINE : WAIT;
}

/* The first forecast point under the limit before the deadline. */
static time_t next_window(const struct carbon_forecast *fc, int max,
			  time_t now, time_t deadline)
{
	for (size_t i = 0; i < fc->n; i++) {
		const struct carbon_point *p = &fc->v[i];

		if (p->to <= now || p->intensity > max)
			continue;
		return p->from > deadline ? 0 : p->from > now ? p->from : now;
	}
	return 0;
}

/* "302 gCO2eq/kWh in DE (electricitymaps, reading 2026-...Z)" */
static void reading_text(const struct mountd *md, const struct gate *x,
			 char *buf, size_t len)
{
	char at[32];

	if (!x->g.have) {
		snprintf(buf, len, "no reading yet from %s for zone %s%s%.160s",
			 carbon_kind_name(carbon_kind_of(md->carbon)),
			 carbon_zone(md->carbon), x->g.error[0] ? ": " : "",
			 x->g.error);
		return;
	}
	core_rfc3339(x->g.r.at, at, sizeof(at));
	snprintf(buf, len, "%s%d gCO2eq/kWh in %s (%s, reading %s)",
		 fresh(md, &x->g, x->t) ? "" : "stale reading: ",
		 x->g.r.intensity, x->g.r.zone[0] ? x->g.r.zone :
		 carbon_zone(md->carbon),
		 carbon_kind_name(carbon_kind_of(md->carbon)), at);
}

static void show_reading(const struct mountd *md, struct core_carbon_status *c,
			 const struct gate *x)
{
	c->intensity = x->g.have ? x->g.r.intensity : -1;
	c->reading_at = x->g.have ? x->g.r.at : 0;
	snprintf(c->zone, sizeof(c->zone), "%s", x->g.have && x->g.r.zone[0] ?
		 x->g.r.zone : carbon_zone(md->carbon));
	snprintf(c->provider, sizeof(c->provider), "%s",
		 carbon_kind_name(carbon_kind_of(md->carbon)));
}

static void wait_locked(struct mountd *md, struct core_vm *vm, struct gate *x)
{
	struct core_carbon_status *c = &vm->st.carbon;
	char reading[CORE_ERR_MAX / 2], msg[CORE_ERR_MAX], by[32], win[64] = "";
	bool first = !c->since;

	if (first) {
		c->since = x->t;
		c->deadline = x->t + (time_t)vm->spec.carbon_max_delay_s;
	}
	c->next_window = next_window(&x->g.fc, vm->spec.carbon_max_intensity,
				     x->t, c->deadline);
	reading_text(md, x, reading, sizeof(reading));
	core_rfc3339(c->deadline, by, sizeof(by));
	if (c->next_window) {
		memcpy(win, "; forecast under the limit from ", 32);
		core_rfc3339(c->next_window, win + 32, sizeof(win) - 32);
	}
	snprintf(msg, sizeof(msg), "%s, above maxIntensity %d; starts when "
		 "under it, or at %s at the latest%s", reading,
		 vm->spec.carbon_max_intensity, by, win);
	core_status_cond(&vm->st, CORE_COND_CARBON_DELAYED, true,
			 fresh(md, &x->g, x->t) ? "IntensityAbove" : "NoReading",
			 msg, x->t);
	vm->st.phase = CORE_PHASE_PENDING;
	if (first)
		core_model_event(md->m, vm, "CarbonDelayed", "%s", msg);
	x->deadline = c->deadline;
}

static void go_locked(struct mountd *md, struct core_vm *vm,
		      const struct gate *x)
{
	struct core_carbon_status *c = &vm->st.carbon;
	char reading[CORE_ERR_MAX / 2], msg[CORE_ERR_MAX];
	const char *reason;
	unsigned waited = c->since ? (unsigned)(x->t - c->since) : 0;

	reading_text(md, x, reading, sizeof(reading));
	if (x->v == GO_GREEN) {
		reason = "IntensityBelow";
		snprintf(msg, sizeof(msg), "%s, at or under maxIntensity %d",
			 reading, vm->spec.carbon_max_intensity);
	} else if (x->v == GO_NOW) {
		reason = "StartNow";
		snprintf(msg, sizeof(msg), "started without a carbon wait "
			 "(start now, or a highAvailability restart): %s",
			 reading);
	} else {
		reason = "Deadline";
		snprintf(msg, sizeof(msg), "maxDelay reached after %us; "
			 "starting with %s", waited, reading);
	}
	core_status_cond(&vm->st, CORE_COND_CARBON_DELAYED, false, reason, msg,
			 x->t);
	if (c->since) {
		c->last_delay_s = waited;
		core_model_event(md->m, vm, "CarbonStart", "%s", msg);
	}
	c->since = c->deadline = c->next_window = 0;
}

static int gate_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	struct gate *x = arg;

	x->v = decide(md, x, vm);
	if (md_x(vm)->keep_up) {
		md_x(vm)->keep_up = false;
		x->v = GO_UNAWARE;
	}
	if (x->v == GO_UNAWARE)
		return 0;
	if (x->v == GO_NO_PROVIDER) {
		core_model_event(md->m, vm, "CarbonIgnored", "carbonAware: node "
				 "%s has no --carbon-provider; starting now",
				 md->node);
		return 0;
	}
	show_reading(md, &vm->st.carbon, x);
	if (x->v == WAIT)
		wait_locked(md, vm, x);
	else
		go_locked(md, vm, x);
	core_model_status_changed(md->m, vm);
	return 0;
}

static void gate_init(struct mountd *md, struct gate *x, bool now)
{
	memset(x, 0, sizeof(*x));
	x->configured = md->carbon != NULL;
	x->now = now;
	x->t = time(NULL);
	if (md->carbon)
		grid_copy(md, &x->g);
}

int md_carbon_gate(struct mountd *md, const char *name, bool now, bool *wait)
{
	struct gate x;
	int rc;

	gate_init(md, &x, now);
	rc = md_vm_edit(md, name, gate_locked, &x);
	*wait = rc == 0 && x.v == WAIT;
	if (*wait)
		md_nq_put_at(&md->work.q, name, x.deadline);
	return rc;
}

/* ---- a start that waits ------------------------------------------------- */

static void end_wait(struct core_vm *vm, const char *reason, const char *msg,
		     time_t now)
{
	struct core_carbon_status *c = &vm->st.carbon;

	c->last_delay_s = (unsigned)(now - c->since);
	c->since = c->deadline = c->next_window = 0;
	core_status_cond(&vm->st, CORE_COND_CARBON_DELAYED, false, reason, msg,
			 now);
}

/* Model lock held: a refresh of a VM that waits keeps it Pending; one
 * that runs now (someone started it) or is no longer meant to run
 * waits no more. */
void md_carbon_show(struct core_vm *vm, time_t now)
{
	unsigned bit = 1u << vm->st.phase;

	if (!vm->st.carbon.since)
		return;
	if (!(bit & (MD_INACTIVE | CORE_PH(PENDING))))
		end_wait(vm, "Started", "the VM was started", now);
	else if (!vm->spec.running)
		end_wait(vm, "Cancelled", "spec.running is false: the start "
			 "that waited will not come", now);
	else
		vm->st.phase = CORE_PHASE_PENDING;
}

static int look_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	struct gate *x = arg;

	x->owned = !md->sync || !strcmp(vm->st.node, md->node);
	x->busy = md_x(vm)->mark.hold != MD_HOLD_NONE;
	if (!vm->st.carbon.since || !x->owned)
		return -ENOENT;
	md_carbon_show(vm, x->t);
	if (!vm->st.carbon.since) {
		core_model_status_changed(md->m, vm);
		return -ENOENT;
	}
	x->v = decide(md, x, vm);
	/* Still waiting: the message follows the new reading. */
	if (x->v == WAIT && !x->busy) {
		show_reading(md, &vm->st.carbon, x);
		wait_locked(md, vm, x);
		core_model_status_changed(md->m, vm);
	}
	return 0;
}

void md_carbon_if_due(struct mountd *md, const char *name)
{
	struct core_ctl msg = { .verb = CORE_V_START, .running = -1 };
	char err[CORE_ERR_MAX];
	struct gate x;

	gate_init(md, &x, false);
	if (md_vm_edit(md, name, look_locked, &x) < 0)
		return;
	if (x.busy) {
		md_nq_put_at(&md->work.q, name, x.t + 1);
		return;
	}
	if (x.v == WAIT) {
		md_nq_put_at(&md->work.q, name, x.deadline);
		return;
	}
	if (md_do(md, name, &msg, err, sizeof(err)) < 0) {
		md_log(LOG_WARN_, "vm %s: the start that waited for the grid "
		       "failed: %s", name, err);
		md_event(md, name, "CarbonStartFailed", err);
	}
}

static int cancel_locked(struct mountd *md, struct core_vm *vm, void *arg)
{
	(void)arg;
	if (!vm->st.carbon.since)
		return -ENOENT;
	end_wait(vm, "Cancelled", "a stop cancelled the start that waited",
		 time(NULL));
	vm->st.phase = CORE_PHASE_STOPPED;
	core_model_event(md->m, vm, "CarbonCancelled", "stop: the start that "
			 "waited for a greener grid will not come");
	core_model_status_changed(md->m, vm);
	return 0;
}

bool md_carbon_cancel(struct mountd *md, const char *name)
{
	if (md_vm_edit(md, name, cancel_locked, NULL) < 0)
		return false;
	md_set_running(md, name, false);
	md_refresh(md, name);
	return true;
}

/* ---- polling -------------------------------------------------------------- */

static unsigned backoff(const struct mountd *md, unsigned failures,
			unsigned retry_after)
{
	unsigned d = interval_s(md);

	for (unsigned i = 0; i < failures && i < 10 && d < BACKOFF_MAX_S; i++)
		d *= 2;
	if (d > BACKOFF_MAX_S)
		d = BACKOFF_MAX_S;
	return d < retry_after ? retry_after : d;
}

/* The grid after one poll; returns the seconds until the next. */
static unsigned take_poll(struct mountd *md, int rc, const struct carbon_poll *p,
			  const char *err)
{
	struct md_grid *g = &md->grid;
	time_t now = time(NULL);
	unsigned next;
	int was;

	pthread_mutex_lock(&md->carbon_lock);
	was = g->last_rc;
	g->last_rc = rc;
	if (rc == 0) {
		g->have = true;
		g->r = p->now;
		g->polled = now;
		g->failures = 0;
		g->error[0] = '\0';
		if (p->fc.n) {
			g->fc = p->fc;
			g->fc_polled = now;
		}
	} else {
		g->failures++;
		snprintf(g->error, sizeof(g->error), "%s", err);
	}
	next = rc == 0 ? interval_s(md) :
	       backoff(md, g->failures, rc == -EAGAIN ? p->retry_after_s : 0);
	pthread_mutex_unlock(&md->carbon_lock);
	/* Once per kind of failure, not once per poll. */
	if (rc < 0 && rc != was)
		md_log(LOG_WARN_, "carbon: %s (next try in %us)", err, next);
	else if (rc == 0 && was < 0)
		md_log(LOG_INFO_, "carbon: %s answers again: %d gCO2eq/kWh in %s",
		       carbon_kind_name(carbon_kind_of(md->carbon)),
		       p->now.intensity, p->now.zone);
	return next;
}

static bool waiting_pick(struct mountd *md, const struct core_vm *vm)
{
	return vm->st.carbon.since &&
	       (!md->sync || !strcmp(vm->st.node, md->node));
}

/* Every VM that waits gets a look with the new reading. */
static void wake_waiting(struct mountd *md)
{
	md_name *names = NULL;
	size_t n = 0;

	if (md_vm_names(md, waiting_pick, &names, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		md_nq_put(&md->work.q, names[i]);
	free(names);
}

static bool want_forecast(struct mountd *md, time_t now)
{
	bool want;

	pthread_mutex_lock(&md->carbon_lock);
	want = now - md->grid.fc_polled >= FORECAST_EVERY_S;
	pthread_mutex_unlock(&md->carbon_lock);
	return want;
}

static bool sleep_until(struct mountd *md, time_t due)
{
	struct timespec until = { .tv_sec = due };
	bool stop;

	pthread_mutex_lock(&md->slock);
	if (!md->stopping)
		pthread_cond_timedwait(&md->scond, &md->slock, &until);
	stop = md->stopping;
	pthread_mutex_unlock(&md->slock);
	return stop;
}

static void *carbon_main(void *arg)
{
	struct mountd *md = arg;
	struct carbon_poll *p = calloc(1, sizeof(*p));
	char err[CORE_ERR_MAX];
	unsigned next;
	int rc;

	if (!p)
		return NULL;
	do {
		memset(p, 0, sizeof(*p));
		err[0] = '\0';
		rc = carbon_poll(md->carbon, want_forecast(md, time(NULL)), p,
				 err, sizeof(err));
		next = take_poll(md, rc, p, err);
		if (md->sync)
			md_carbon_publish(md);
		md_update_nodes(md, false);
		wake_waiting(md);
	} while (!sleep_until(md, time(NULL) + next));
	free(p);
	return NULL;
}

int md_carbon_open(struct mountd *md, char *err, size_t errlen)
{
	struct carbon_cfg c = md->cfg.carbon;
	unsigned iv = interval_s(md);
	char why[CORE_ERR_MAX];
	int rc;

	if (c.kind == CARBON_NONE)
		return 0;
	/* A request never outlasts the period, nor holds a stop long. */
	c.timeout_s = iv < 2 ? 2 : iv > 10 ? 10 : iv;
	rc = carbon_open(&c, &md->carbon, why, sizeof(why));
	if (rc < 0)
		snprintf(err, errlen, "--carbon-provider %s: %s",
			 carbon_kind_name(c.kind), why);
	return rc;
}

int md_carbon_start(struct mountd *md)
{
	if (!md->carbon)
		return 0;
	if (pthread_create(&md->carbon_thread, NULL, carbon_main, md))
		return -EAGAIN;
	md->carbon_started = true;
	return 0;
}

/* After md->stopping is set and scond broadcast (md_stats_stop), and
 * after the reconciler stopped. */
void md_carbon_close(struct mountd *md)
{
	if (md->carbon_started)
		pthread_join(md->carbon_thread, NULL);
	md->carbon_started = false;
	carbon_close(md->carbon);
	md->carbon = NULL;
}
