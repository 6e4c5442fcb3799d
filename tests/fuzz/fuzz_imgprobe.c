/* libFuzzer: the image format probe (backend/imgprobe.c).  Any bytes give
 * one of the three answers; a refusal always says why, and whatever is
 * called qcow2 starts with its magic. */
#include "backend/backend.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t hlen = size < 4096 ? size : 4096;
	size_t tlen = size < 512 ? 0 : 512;
	const char *why = NULL;
	enum be_imgfmt f;

	f = be_imgprobe(data, hlen, data + size - tlen, tlen, &why);
	if (f == BE_IMG_REFUSED && (!why || !*why))
		abort();
	if (f != BE_IMG_REFUSED && why)
		abort();
	if (f == BE_IMG_QCOW2 && (hlen < 4 || memcmp(data, "QFI\xfb", 4)))
		abort();
	if (f != BE_IMG_RAW && f != BE_IMG_QCOW2 && f != BE_IMG_REFUSED)
		abort();
	return 0;
}
