/* Private to carbon/: what the parsers (parse.c, a library of their own
 * for the fuzzers) share with poll.c. */
#ifndef HYPERSDK_CARBON_PRIV_H
#define HYPERSDK_CARBON_PRIV_H

#include <stdbool.h>
#include <stddef.h>

/* No provider's answer comes near it; a larger one is not an answer. */
#define CARBON_BODY_MAX (1024 * 1024)

/* A zone as a label: 1 to CARBON_ZONE_MAX - 1 of [A-Za-z0-9_-], so it
 * goes into a URL's query, a log line or a file name as it is. */
bool carbon_label_ok(const char *s);

/* Format the reason into err; returns rc. */
int carbon_errf(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
