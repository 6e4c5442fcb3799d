/* Domain XML: building it from a spec, and reading back the few things we
 * need from libvirt's own (always well-formed, normalised) output. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/priv.h"

/* ---- string builder ------------------------------------------------ */

static bool sb_grow(struct be_sb *b, size_t need)
{
	size_t cap;
	char *p;

	if (b->failed)
		return false;
	if (b->len + need + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 1024;
	while (cap < b->len + need + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void be_sb_printf(struct be_sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if (!sb_grow(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void sb_putn(struct be_sb *b, const char *s, size_t n)
{
	if (!sb_grow(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* XML 1.0 cannot carry most control characters even as references, and
 * libvirt rejects invalid UTF-8, so both become '?' rather than making
 * the whole definition fail on one stray byte of user text. */
void be_sb_esc(struct be_sb *b, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n;

	while (*u) {
		switch (*u) {
		case '&': sb_putn(b, "&amp;", 5); u++; continue;
		case '<': sb_putn(b, "&lt;", 4); u++; continue;
		case '>': sb_putn(b, "&gt;", 4); u++; continue;
		case '"': sb_putn(b, "&quot;", 6); u++; continue;
		case '\'': sb_putn(b, "&apos;", 6); u++; continue;
		case '\n': sb_putn(b, "&#10;", 5); u++; continue;
		case '\r': sb_putn(b, "&#13;", 5); u++; continue;
		case '\t': sb_putn(b, "&#9;", 4); u++; continue;
		}
		n = *u < 0x20 || *u == 0x7f ? 0 : utf8_len(u);
		if (n == 0) {
			sb_putn(b, "?", 1);
			u++;
			continue;
		}
		sb_putn(b, (const char *)u, n);
		u += n;
	}
}

char *be_sb_take(struct be_sb *b)
{
	char *p = b->p;

	if (b->failed || !p) {
		free(b->p);
		p = NULL;
	}
	b->p = NULL;
	b->len = b->cap = 0;
	b->failed = false;
	return p;
}

/* ---- building the domain ------------------------------------------- */

static bool is_uuid(const char *s)
{
	static const char pat[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
	size_t i;

	if (!s || strlen(s) != sizeof(pat) - 1)
		return false;
	for (i = 0; pat[i]; i++)
		if (pat[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

static void el_text(struct be_sb *b, const char *indent, const char *tag,
		    const char *text)
{
	be_sb_printf(b, "%s<%s>", indent, tag);
	be_sb_esc(b, text ? text : "");
	be_sb_printf(b, "</%s>\n", tag);
}

static void xml_metadata(struct be_sb *b, const struct be_xml_params *p)
{
	const char *in = "      ";

	be_sb_printf(b, "  <metadata>\n    <%s:vm xmlns:%s=\"%s\">\n",
		     BE_NS_PREFIX, BE_NS_PREFIX, BE_NS_URI);
	el_text(b, in, BE_NS_PREFIX ":namespace", p->ns);
	el_text(b, in, BE_NS_PREFIX ":uid", p->uid);
	el_text(b, in, BE_NS_PREFIX ":node", p->node);
	el_text(b, in, BE_NS_PREFIX ":spec", p->spec_json ? p->spec_json : "{}");
	be_sb_printf(b, "    </%s:vm>\n  </metadata>\n", BE_NS_PREFIX);
}

/* The most a VM can grow to without a restart, when its spec does not
 * say: vCPUs up to the host's CPUs, at most 8 (more hotplug slots cost
 * QEMU memory and boot time for every VM); memory up to twice the
 * start size, at most the host's memory.  Never below the current size. */
#define BE_DEFAULT_MAX_CPUS 8

static int max_cpus_of(const struct be_xml_params *p, int cpus)
{
	int host = p->host_cpus > 0 ? p->host_cpus : 1;
	int dflt = host < BE_DEFAULT_MAX_CPUS ? host : BE_DEFAULT_MAX_CPUS;
	int m = p->spec->max_cpus > 0 ? p->spec->max_cpus : dflt;

	return m > cpus ? m : cpus;
}

static uint64_t max_mem_of(const struct be_xml_params *p, uint64_t cur)
{
	uint64_t m = p->spec->max_memory;

	if (m == 0) {
		m = cur * 2;
		if (p->host_memory > 0 && m > p->host_memory)
			m = p->host_memory;
	}
	return m > cur ? m : cur;
}

/* Memory grows live by hot-plugging DIMMs into the room between <memory>
 * and <maxMemory>: unlike a balloon (which boots the guest with the
 * maximum and relies on its driver to give memory back), the guest gets
 * exactly <memory> at boot and QEMU adds real RAM on resize, with or
 * without a guest driver.  <maxMemory> needs a NUMA topology: one cell
 * holding every possible vCPU. */
static void xml_sizing(struct be_sb *b, const struct be_xml_params *p)
{
	const struct core_spec *s = p->spec;
	uint64_t cur = (s->memory + 1023) / 1024;
	int cpus = s->cpus > 0 ? s->cpus : 1;
	int maxc = max_cpus_of(p, cpus);
	uint64_t max = (max_mem_of(p, s->memory) + 1023) / 1024;

	/* DIMMs are whole MiB; the room must hold at least one. */
	max -= max % 1024;
	if (max >= cur + 1024)
		be_sb_printf(b, "  <maxMemory slots='%d' unit='KiB'>%" PRIu64
			     "</maxMemory>\n", BE_DIMM_SLOTS, max);
	be_sb_printf(b, "  <memory unit='KiB'>%" PRIu64 "</memory>\n", cur);
	be_sb_printf(b, "  <currentMemory unit='KiB'>%" PRIu64
		     "</currentMemory>\n", cur);
	if (maxc > cpus)
		be_sb_printf(b, "  <vcpu placement='static' current='%d'>%d"
			     "</vcpu>\n", cpus, maxc);
	else
		be_sb_printf(b, "  <vcpu placement='static'>%d</vcpu>\n", cpus);
}

/* The NUMA cell that <maxMemory> needs, inside <cpu>. */
static void xml_numa(struct be_sb *b, const struct be_xml_params *p)
{
	const struct core_spec *s = p->spec;
	uint64_t cur = (s->memory + 1023) / 1024;
	uint64_t max = (max_mem_of(p, s->memory) + 1023) / 1024;
	int cpus = s->cpus > 0 ? s->cpus : 1;
	int maxc = max_cpus_of(p, cpus);

	max -= max % 1024;
	if (max < cur + 1024)
		return;
	if (maxc > 1)
		be_sb_printf(b, "    <numa>\n      <cell id='0' cpus='0-%d' "
			     "memory='%" PRIu64 "' unit='KiB'/>\n    </numa>\n",
			     maxc - 1, cur);
	else
		be_sb_printf(b, "    <numa>\n      <cell id='0' cpus='0' "
			     "memory='%" PRIu64 "' unit='KiB'/>\n    </numa>\n",
			     cur);
}

static void xml_os(struct be_sb *b, const struct be_xml_params *p)
{
	const struct core_spec *s = p->spec;
	bool efi = s->firmware && strcmp(s->firmware, "uefi") == 0;

	be_sb_printf(b, "  <os%s>\n    <type", efi ? " firmware='efi'" : "");
	if (s->machine_type && *s->machine_type) {
		be_sb_printf(b, " machine='");
		be_sb_esc(b, s->machine_type);
		be_sb_printf(b, "'");
	}
	be_sb_printf(b, ">hvm</type>\n");
	/* Left to itself libvirt may pick the secure-boot build of OVMF,
	 * which needs SMM; QEMU then refuses to start under nested KVM. */
	if (efi)
		be_sb_printf(b, "    <firmware>\n"
			     "      <feature enabled='no' name='secure-boot'/>\n"
			     "      <feature enabled='no' name='enrolled-keys'/>\n"
			     "    </firmware>\n");
	if (p->kernel) {
		el_text(b, "    ", "kernel", p->kernel);
		if (p->initrd)
			el_text(b, "    ", "initrd", p->initrd);
		if (s->cmdline && *s->cmdline)
			el_text(b, "    ", "cmdline", s->cmdline);
	}
	be_sb_printf(b, "  </os>\n  <features>\n    <acpi/>\n    <apic/>\n"
		     "  </features>\n");
	/* Nested KVM here cannot set MSR 0x10a (arch-capabilities), which
	 * kills QEMU at start with host-model and host-passthrough alike;
	 * qemu64 asks for features the nested host lacks.  Under TCG qemu64
	 * is the model QEMU emulates fully. */
	if (strcmp(p->domain_type, "kvm") == 0)
		be_sb_printf(b, "  <cpu mode='host-passthrough' check='none'>\n"
			     "    <feature policy='disable' "
			     "name='arch-capabilities'/>\n");
	else
		be_sb_printf(b, "  <cpu mode='custom' match='exact' "
			     "check='none'>\n    <model fallback='allow'>"
			     "qemu64</model>\n");
	xml_numa(b, p);
	be_sb_printf(b, "  </cpu>\n");
	be_sb_printf(b, "  <clock offset='utc'/>\n"
		     "  <on_poweroff>destroy</on_poweroff>\n"
		     "  <on_reboot>restart</on_reboot>\n"
		     "  <on_crash>destroy</on_crash>\n");
}

/* vda..vdz, vdaa..: the kernel's naming, which libvirt expects. */
static void disk_dev(char *out, size_t len, const char *pfx, size_t i)
{
	char tail[8];
	size_t n = 0, k;

	i++;
	while (i > 0 && n < sizeof(tail)) {
		i--;
		tail[n++] = (char)('a' + i % 26);
		i /= 26;
	}
	k = (size_t)snprintf(out, len, "%s", pfx);
	while (n > 0 && k + 1 < len)
		out[k++] = tail[--n];
	out[k < len ? k : len - 1] = '\0';
}

static void xml_disks(struct be_sb *b, const struct be_xml_params *p)
{
	const struct core_spec *s = p->spec;
	char dev[16];
	size_t i;

	for (i = 0; i < s->ndisks; i++) {
		if (!p->disk_paths || !p->disk_paths[i])
			continue;
		disk_dev(dev, sizeof(dev), "vd", i);
		be_sb_printf(b, "    <disk type='file' device='disk'>\n"
			     "      <driver name='qemu' type='qcow2' "
			     "discard='unmap'/>\n      <source file='");
		be_sb_esc(b, p->disk_paths[i]);
		be_sb_printf(b, "'/>\n      <target dev='%s' bus='virtio'/>\n",
			     dev);
		if (s->disks[i].boot_order > 0)
			be_sb_printf(b, "      <boot order='%d'/>\n",
				     s->disks[i].boot_order);
		be_sb_printf(b, "    </disk>\n");
	}
	if (!p->seed_iso)
		return;
	/* SATA works with both i440fx and q35; IDE does not exist on q35. */
	be_sb_printf(b, "    <disk type='file' device='cdrom'>\n"
		     "      <driver name='qemu' type='raw'/>\n"
		     "      <source file='");
	be_sb_esc(b, p->seed_iso);
	be_sb_printf(b, "'/>\n      <target dev='sda' bus='sata'/>\n"
		     "      <readonly/>\n    </disk>\n");
}

static void xml_nics(struct be_sb *b, const struct be_xml_params *p)
{
	const struct core_spec *s = p->spec;
	size_t i;

	for (i = 0; i < s->nnets; i++) {
		bool user = !p->network ||
			    (s->nets[i].type && !strcmp(s->nets[i].type, "user"));

		if (user) {
			be_sb_printf(b, "    <interface type='user'>\n");
		} else {
			be_sb_printf(b, "    <interface type='network'>\n"
				     "      <source network='");
			be_sb_esc(b, p->network);
			be_sb_printf(b, "'/>\n");
		}
		be_sb_printf(b, "      <model type='virtio'/>\n"
			     "    </interface>\n");
	}
}

static void xml_devices(struct be_sb *b, const struct be_xml_params *p)
{
	be_sb_printf(b, "  <devices>\n");
	xml_disks(b, p);
	xml_nics(b, p);
	be_sb_printf(b, "    <serial type='pty'>\n      <target port='0'/>\n"
		     "    </serial>\n    <console type='pty'>\n"
		     "      <target type='serial' port='0'/>\n"
		     "    </console>\n");
	if (p->spec->guest_agent)
		be_sb_printf(b, "    <channel type='unix'>\n"
			     "      <source mode='bind'/>\n"
			     "      <target type='virtio' name='%s'/>\n"
			     "    </channel>\n", BE_AGENT_CHANNEL);
	/* Loopback is every local user's and every hostNetwork pod's: the
	 * screen and keyboard need the owner's password. */
	if (p->vnc_password) {
		be_sb_printf(b, "    <graphics type='vnc' autoport='yes' "
			     "listen='127.0.0.1' passwd='");
		be_sb_esc(b, p->vnc_password);
		be_sb_printf(b, "'>\n      <listen type='address' "
			     "address='127.0.0.1'/>\n    </graphics>\n");
	}
	be_sb_printf(b, "    <memballoon model='virtio'/>\n  </devices>\n");
}

char *be_domain_xml(const struct be_xml_params *p)
{
	struct be_sb b = { 0 };
	const char *uuid;

	if (!p || !p->name || !p->spec || !p->domain_type)
		return NULL;
	uuid = p->uuid ? p->uuid : p->uid;
	be_sb_printf(&b, "<domain type='%s'>\n",
		     strcmp(p->domain_type, "kvm") == 0 ? "kvm" : "qemu");
	el_text(&b, "  ", "name", p->name);
	if (is_uuid(uuid))
		el_text(&b, "  ", "uuid", uuid);
	xml_metadata(&b, p);
	xml_sizing(&b, p);
	xml_os(&b, p);
	xml_devices(&b, p);
	be_sb_printf(&b, "</domain>\n");
	return be_sb_take(&b);
}

/* ---- scanning libvirt's XML ---------------------------------------- */

/* Length of the element name at s (after '<' or '</'). */
static size_t name_len(const char *s, const char *end)
{
	const char *q = s;

	while (q < end && !isspace((unsigned char)*q) && *q != '/' && *q != '>')
		q++;
	return (size_t)(q - s);
}

/* Whether the qualified name [s, s+n) has local part tag. */
static bool local_is(const char *s, size_t n, const char *tag)
{
	const char *colon = memchr(s, ':', n);
	size_t tl = strlen(tag);

	if (colon) {
		n -= (size_t)(colon + 1 - s);
		s = colon + 1;
	}
	return n == tl && memcmp(s, tag, tl) == 0;
}

const char *be_xml_next(const char *p, const char *end, const char *tag)
{
	while (p && p < end && (p = memchr(p, '<', (size_t)(end - p)))) {
		if (p + 1 < end && p[1] != '/' && p[1] != '?' && p[1] != '!' &&
		    local_is(p + 1, name_len(p + 1, end), tag))
			return p;
		p++;
	}
	return NULL;
}

/* The '>' closing the tag that starts at p, honouring quoted values. */
static const char *tag_close(const char *p, const char *end)
{
	char q = 0;

	for (; p < end; p++) {
		if (q) {
			if (*p == q)
				q = 0;
		} else if (*p == '"' || *p == '\'') {
			q = *p;
		} else if (*p == '>') {
			return p;
		}
	}
	return NULL;
}

const char *be_xml_end(const char *el, const char *end, const char *tag)
{
	const char *p = tag_close(el, end);
	int depth = 1;

	if (!p)
		return end;
	if (p[-1] == '/')
		return p + 1;
	while ((p = memchr(p, '<', (size_t)(end - p)))) {
		bool closing = p + 1 < end && p[1] == '/';
		const char *nm = p + 1 + closing;
		const char *gt = tag_close(p, end);

		if (!gt)
			return end;
		if (local_is(nm, name_len(nm, end), tag)) {
			if (closing)
				depth--;
			else if (gt[-1] != '/')
				depth++;
			if (depth == 0)
				return gt + 1;
		}
		p = gt + 1;
	}
	return end;
}

static void put_utf8(char **o, char *lim, unsigned long cp)
{
	char buf[4];
	size_t n, i;

	if (cp < 0x80)
		buf[0] = (char)cp, n = 1;
	else if (cp < 0x800)
		buf[0] = (char)(0xc0 | cp >> 6), buf[1] = (char)(0x80 | (cp & 0x3f)),
		n = 2;
	else if (cp < 0x10000)
		buf[0] = (char)(0xe0 | cp >> 12),
		buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
		buf[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
	else
		buf[0] = (char)(0xf0 | cp >> 18),
		buf[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
		buf[2] = (char)(0x80 | ((cp >> 6) & 0x3f)),
		buf[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
	for (i = 0; i < n && *o < lim; i++)
		*(*o)++ = buf[i];
}

/* Decode entities of [s, e) into out (at most len-1 bytes + NUL). */
static void unescape(const char *s, const char *e, char *out, size_t len)
{
	static const struct { const char *name; char c; } ent[] = {
		{ "lt;", '<' }, { "gt;", '>' }, { "amp;", '&' },
		{ "quot;", '"' }, { "apos;", '\'' },
	};
	char *o = out, *lim = out + len - 1;
	size_t i;

	while (s < e && o < lim) {
		if (*s != '&') {
			*o++ = *s++;
			continue;
		}
		s++;
		if (*s == '#') {
			char *q;
			unsigned long cp = s[1] == 'x' ? strtoul(s + 2, &q, 16)
						       : strtoul(s + 1, &q, 10);
			if (cp > 0 && cp <= 0x10ffff)
				put_utf8(&o, lim, cp);
			s = *q == ';' ? q + 1 : q;
			continue;
		}
		for (i = 0; i < sizeof(ent) / sizeof(ent[0]); i++)
			if (!strncmp(s, ent[i].name, strlen(ent[i].name)))
				break;
		if (i == sizeof(ent) / sizeof(ent[0])) {
			*o++ = '&';
			continue;
		}
		*o++ = ent[i].c;
		s += strlen(ent[i].name);
	}
	*o = '\0';
}

bool be_xml_attr(const char *el, const char *attr, char *out, size_t len)
{
	const char *end = el + strlen(el);
	const char *gt = tag_close(el, end);
	const char *p = el + 1 + name_len(el + 1, end);
	size_t al = strlen(attr);

	if (!gt || len == 0)
		return false;
	while (p < gt) {
		const char *nm, *v, *ve;
		char q;

		while (p < gt && isspace((unsigned char)*p))
			p++;
		nm = p;
		while (p < gt && *p != '=' && !isspace((unsigned char)*p))
			p++;
		v = memchr(p, '=', (size_t)(gt - p));
		if (!v || v + 1 >= gt || (v[1] != '"' && v[1] != '\''))
			return false;
		q = v[1];
		v += 2;
		ve = memchr(v, q, (size_t)(gt - v));
		if (!ve)
			return false;
		if ((size_t)(p - nm) == al && memcmp(nm, attr, al) == 0) {
			unescape(v, ve, out, len);
			return true;
		}
		p = ve + 1;
	}
	return false;
}

char *be_xml_text(const char *el, const char *end, const char *tag)
{
	const char *s = tag_close(el, end), *e;
	char *out;

	if (!s || s[-1] == '/')
		return strdup("");
	s++;
	e = be_xml_end(el, end, tag);
	/* e is just past "</tag>"; step back to its '<'. */
	while (e > s && *(e - 1) != '<')
		e--;
	if (e <= s)
		return strdup("");
	e--;
	out = malloc((size_t)(e - s) + 1);
	if (out)
		unescape(s, e, out, (size_t)(e - s) + 1);
	return out;
}
