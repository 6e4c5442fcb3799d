/* The stats thread: every --stats-interval, each running guest's
 * counters into its stats file, this node's and its peers' status into
 * nodes/, and the slow clocks (snapshot retention, template usage). */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "mountd/priv.h"

struct stats_pass {
	struct mountd *md;
	uint64_t pass;
};

static void got_stats(const char *name, const char *txt, size_t len, void *arg)
{
	struct stats_pass *p = arg;
	struct core_vm *vm;

	core_model_wrlock(p->md->m);
	vm = core_model_find(p->md->m, name);
	if (vm && (vm->len_stats != len || memcmp(vm->txt_stats, txt, len)))
		core_model_set_stats(p->md->m, vm, txt, len);
	core_model_unlock(p->md->m);
}

static int clear_idle_stats(struct core_vm *vm, void *arg)
{
	struct core_model *m = arg;

	if (vm->st.phase != CORE_PHASE_RUNNING &&
	    vm->st.phase != CORE_PHASE_PAUSED && vm->len_stats)
		core_model_set_stats(m, vm, "", 0);
	return 0;
}

static void *stats_main(void *arg)
{
	struct mountd *md = arg;
	struct stats_pass p = { .md = md };
	struct timespec until;

	pthread_mutex_lock(&md->slock);
	while (!md->stopping) {
		pthread_mutex_unlock(&md->slock);
		be_stats_all(md->be, got_stats, &p);
		md_update_nodes(md, true);
		if (md->sync)
			md_failover_scan(md);
		core_model_wrlock(md->m);
		core_model_each(md->m, clear_idle_stats, md->m);
		core_model_unlock(md->m);
		core_model_flush(md->m);
		/* Retention and template usage ride on the same clock. */
		md_ops_sweep(md);
		md_template_usage_tick(md);
		p.pass++;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += md->stats_interval_ms / 1000;
		until.tv_nsec += (long)(md->stats_interval_ms % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_mutex_lock(&md->slock);
		if (!md->stopping)
			pthread_cond_timedwait(&md->scond, &md->slock, &until);
	}
	pthread_mutex_unlock(&md->slock);
	return NULL;
}

/* The fencing watchdog: a tick a second, whatever --stats-interval. */
static void *fencer_main(void *arg)
{
	struct mountd *md = arg;
	struct timespec until;

	pthread_mutex_lock(&md->slock);
	while (!md->stopping) {
		pthread_mutex_unlock(&md->slock);
		md_fence_check(md);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec++;
		pthread_mutex_lock(&md->slock);
		if (!md->stopping)
			pthread_cond_timedwait(&md->scond, &md->slock, &until);
	}
	pthread_mutex_unlock(&md->slock);
	return NULL;
}

int md_stats_start(struct mountd *md)
{
	if (pthread_create(&md->stats, NULL, stats_main, md))
		return -EAGAIN;
	md->stats_started = true;
	if (md->sync && pthread_create(&md->fencer, NULL, fencer_main, md))
		return -EAGAIN;
	md->fencer_started = md->sync != NULL;
	return 0;
}

void md_stats_stop(struct mountd *md)
{
	pthread_mutex_lock(&md->slock);
	md->stopping = true;
	pthread_cond_broadcast(&md->scond);
	pthread_mutex_unlock(&md->slock);
	if (md->stats_started)
		pthread_join(md->stats, NULL);
	if (md->fencer_started)
		pthread_join(md->fencer, NULL);
	md->stats_started = md->fencer_started = false;
}
