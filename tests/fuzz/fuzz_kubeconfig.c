/* libFuzzer: kubeconfig text -> sync_kubeconfig_parse, with the current
 * context and with context "a".  A success must give an http(s) server and
 * credentials that copy; a failure must say why.  Relative paths resolve
 * against a folder that does not exist, so only absolute paths in the
 * input reach the file system (and token files must be regular files). */
#include "sync/priv.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const char *text, size_t size, const char *ctx)
{
	struct sync_creds c, d;
	char err[512] = "";
	int r;

	r = sync_kubeconfig_parse(text, size, "/nonexistent-hypersdk", ctx, &c,
				  err, sizeof(err));
	if (r < 0) {
		if (!err[0] || c.server)
			abort();
		return;
	}
	if (!c.server || (strncmp(c.server, "https://", 8) &&
			  strncmp(c.server, "http://", 7)))
		abort();
	if ((c.cert_pem || c.cert_file) != (c.key_pem || c.key_file))
		abort();
	if (sync_creds_copy(&c, &d) != 0 || strcmp(c.server, d.server) != 0)
		abort();
	sync_creds_free(&c);
	sync_creds_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	one((const char *)data, size, NULL);
	one((const char *)data, size, "a");
	return 0;
}
