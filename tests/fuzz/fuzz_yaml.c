/* libFuzzer: a spec as YAML -> JSON -> core_spec_from_json -> YAML.
 * Anything that parses must emit, and the emitted YAML must parse back to
 * the same JSON and the same verdict of the validator. */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int validate(json_object *o)
{
	char err[CORE_ERR_MAX] = "";
	struct core_spec s;
	int r = core_spec_from_json(o, &s, err, sizeof(err));

	if (r == 0)
		core_spec_free(&s);
	else if (!err[0])
		abort();
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[CORE_ERR_MAX], *y = NULL;
	json_object *a = NULL, *b = NULL;
	size_t n = 0;
	int va;

	if (size > 64 * 1024)
		return 0;
	if (core_yaml_parse((const char *)data, size, &a, err, sizeof(err)))
		return 0;
	va = validate(a);
	if (core_yaml_emit(a, &y, &n) != 0)
		abort();
	if (core_yaml_parse(y, n, &b, err, sizeof(err)) != 0)
		abort();
	if (!json_object_equal(a, b) || validate(b) != va)
		abort();
	free(y);
	json_object_put(a);
	json_object_put(b);
	return 0;
}
