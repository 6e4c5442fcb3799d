/* When a VM that stopped on its own comes back: highAvailability's
 * restartPolicy, and the pause between tries, as Kubernetes spaces a
 * container's restarts (CrashLoopBackOff). */
#include "core/core.h"

#include <string.h>

enum core_action core_on_unexpected_stop(const struct core_spec *spec,
					 bool crashed)
{
	const char *p;

	if (!spec || !spec->ha_enabled)
		return CORE_ACT_NONE;
	/* An enabled HA block without a policy means the seed's default. */
	p = spec->ha_restart_policy ? spec->ha_restart_policy : "Always";
	if (strcmp(p, "Always") == 0)
		return CORE_ACT_START;
	if (strcmp(p, "OnFailure") == 0 && crashed)
		return CORE_ACT_START;
	return CORE_ACT_NONE;
}

/* first (10 s), doubling to 30 times that (5 min).  A run of 60 times
 * first (10 min) or more was a success: the count of failures in a row
 * starts again. */
unsigned core_restart_delay(unsigned *failures, time_t started, time_t now,
			    unsigned first)
{
	unsigned max = first * CORE_BACKOFF_MAX_X;
	unsigned d = first;

	if (started && now - started >= (time_t)first * CORE_BACKOFF_STABLE_X)
		*failures = 0;
	for (unsigned i = 0; i < *failures && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	(*failures)++;
	return d;
}
