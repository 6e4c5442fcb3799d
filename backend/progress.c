/* Progress and cancel of long calls (be_progress), and the tick that
 * turns a growing output file into a percentage while a helper (qemu-img)
 * writes it: one for clones' copies and imports' conversions alike. */
#include <sys/stat.h>

#include "backend/priv.h"

void be_report(const struct be_progress *p, int pct, const char *msg)
{
	if (p && p->fn)
		p->fn(p->arg, pct, msg);
}

bool be_cancelled(const struct be_progress *p)
{
	return p && p->cancel && *p->cancel;
}

/* Allocated blocks, not the size: qemu-img writes qcow2 sparsely. */
void be_file_tick(void *arg)
{
	struct be_file_tick *t = arg;
	struct stat st;
	uint64_t got;
	int pct;

	if (t->total == 0 || stat(t->path, &st) < 0)
		return;
	got = (uint64_t)st.st_blocks * 512;
	if (got > t->total)
		got = t->total;
	pct = t->done + (int)(got * (uint64_t)t->share / t->total);
	if (pct != t->last)
		be_report(t->p, pct, t->what);
	t->last = pct;
}
