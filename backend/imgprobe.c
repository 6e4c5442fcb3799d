/* Image formats from a file's first (and last) bytes.  Pure, so the
 * fuzzer can drive it.  The format is decided here and handed to
 * qemu-img with -f: qemu-img's own probing would let an image's first
 * bytes choose a format whose metadata names other files (a VMDK extent,
 * a qcow2 data file, a backing file), and QEMU would read them as root. */
#include <stdint.h>
#include <string.h>

#include "backend/backend.h"

struct magic {
	size_t off;
	const char *bytes;
	size_t len;
	const char *name;
};

#define M(off, s, name) { off, s, sizeof(s) - 1, name }

/* Formats QEMU knows that are not raw or qcow2, by the magic QEMU's
 * probes look for at the start of the file. */
static const struct magic refused[] = {
	M(0, "KDMV", "vmdk"),
	M(0, "COWD", "vmdk"),
	M(0, "# Disk DescriptorFile", "vmdk descriptor"),
	M(0, "conectix", "vpc (vhd)"),
	M(0, "vhdxfile", "vhdx"),
	M(0, "QED\0", "qed"),
	M(0, "QEVM", "qemu vm state"),
	M(0, "LUKS\xba\xbe", "luks"),
	M(0, "WithoutFreeSpace", "parallels"),
	M(0, "WithouFreSpacExt", "parallels"),
	M(0, "Bochs Virtual HD Image", "bochs"),
	M(0, "#!/bin/sh\n#V2.0 Format", "cloop"),
	M(0, "<<< Oracle VM VirtualBox Disk Image >>>", "vdi"),
	M(0x40, "\x7f\x10\xda\xbe", "vdi"),
};

/* A VMDK descriptor may start with other comment lines; QEMU's probe
 * reads text lines up to a "version=" or "createType" one. */
static bool vmdk_text(const unsigned char *b, size_t len)
{
	static const char *const keys[] = { "# Disk DescriptorFile",
					    "createType", "RW ", "RDONLY ",
					    "NOACCESS ", NULL };
	size_t n = len < 4096 ? len : 4096;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = b[i];

		if (c == 0)
			break;
		if (c != '\n' && c != '\r' && c != '\t' && (c < 0x20 || c > 0x7e))
			return false;
		if (i != 0 && b[i - 1] != '\n')
			continue;
		for (int k = 0; keys[k]; k++)
			if (n - i >= strlen(keys[k]) &&
			    !memcmp(b + i, keys[k], strlen(keys[k])))
				return true;
	}
	return false;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* qcow2 header: version at 4, backing file offset at 8, incompatible
 * features (v3) at 72, bit 2 an external data file. */
static int qcow2_header(const unsigned char *b, size_t len,
			const char **why)
{
	uint32_t version;

	if (len < 72) {
		*why = "qcow2 header is truncated";
		return -1;
	}
	version = be32(b + 4);
	if (version < 2) {
		*why = "qcow (version 1)";
		return -1;
	}
	if (be64(b + 8) != 0) {
		*why = "qcow2 with a backing file";
		return -1;
	}
	if (version >= 3 && len >= 80 && (be64(b + 72) & 4)) {
		*why = "qcow2 with an external data file";
		return -1;
	}
	return 0;
}

enum be_imgfmt be_imgprobe(const unsigned char *head, size_t hlen,
			   const unsigned char *tail, size_t tlen,
			   const char **why)
{
	*why = NULL;
	if (hlen >= 4 && !memcmp(head, "QFI\xfb", 4))
		return qcow2_header(head, hlen, why) < 0 ? BE_IMG_REFUSED :
							   BE_IMG_QCOW2;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		const struct magic *m = &refused[i];

		if (hlen >= m->off + m->len &&
		    !memcmp(head + m->off, m->bytes, m->len)) {
			*why = m->name;
			return BE_IMG_REFUSED;
		}
	}
	if (vmdk_text(head, hlen)) {
		*why = "vmdk descriptor";
		return BE_IMG_REFUSED;
	}
	/* dmg and fixed vhd keep their header in the last 512 bytes. */
	if (tlen >= 512 && !memcmp(tail + tlen - 512, "koly", 4)) {
		*why = "dmg";
		return BE_IMG_REFUSED;
	}
	if (tlen >= 512 && !memcmp(tail + tlen - 512, "conectix", 8)) {
		*why = "vpc (vhd)";
		return BE_IMG_REFUSED;
	}
	return BE_IMG_RAW;
}
