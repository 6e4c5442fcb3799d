/* libFuzzer: quantities and rates.  Whatever parses must format back to
 * text that parses to the same number. */
#include "core/core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(uint64_t v)
{
	char buf[32], err[CORE_ERR_MAX];
	uint64_t back = 0;

	core_qty_format(v, buf, sizeof(buf));
	if (core_qty_parse(buf, &back, err, sizeof(err)) != 0 || back != v)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CORE_ERR_MAX], *s;
	uint64_t v = 0, raw = 0;
	int r;

	if (size > 4096)
		return 0;
	s = strndup((const char *)data, size);
	if (!s)
		return 0;
	r = core_qty_parse(s, &v, err, sizeof(err));
	if (r == 0)
		round_trip(v);
	else if ((r != -EINVAL && r != -ERANGE) || !err[0])
		abort();
	r = core_rate_parse(s, &v, err, sizeof(err));
	if (r != 0 && r != -EINVAL && r != -ERANGE)
		abort();
	memcpy(&raw, data, size < sizeof(raw) ? size : sizeof(raw));
	round_trip(raw);
	free(s);
	return 0;
}
