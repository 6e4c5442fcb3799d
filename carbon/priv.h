/* Private to carbon/: what the parsers (parse.c, a library of their own
 * for the fuzzers) share with poll.c. */
#ifndef HYPERSDK_CARBON_PRIV_H
#define HYPERSDK_CARBON_PRIV_H

#include <stdbool.h>
#include <stddef.h>

/* No provider's answer comes near it; a larger one is not an answer. */
#define CARBON_BODY_MAX (1024 * 1024)


#endif
