/* be_domain_xml: content for every spec field, escaping of hostile user
 * text, and acceptance by libvirt's own parser and RNG schema (the
 * in-process test:///default driver, no daemon needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "backend/backend.h"
#include "backend/priv.h"

#define HOSTILE_CMDLINE \
	"console=ttyS0 </cmdline><evil a='1'/> & \"q\" ]]> <!-- x"
#define HOSTILE_USERDATA \
	"#cloud-config\nruncmd: [\"echo '</hypersdk:spec>' && <x> &amp;\"]\n"

static void quiet(void *arg, virErrorPtr e)
{
}

static struct core_disk disks[] = {
	{ .name = "root", .size = 64ULL << 20, .boot_order = 1 },
	{ .name = "data", .size = 1ULL << 30 },
};

static struct core_net nets[] = {
	{ .name = "default", .type = "pod-network" },
	{ .name = "slirp", .type = "user" },
};

static void full_spec(struct core_spec *s)
{
	memset(s, 0, sizeof(*s));
	s->cpus = 2;
	s->max_cpus = 4;
	s->memory = 64ULL << 20;
	s->max_memory = 128ULL << 20;
	s->disks = disks;
	s->ndisks = 2;
	s->nets = nets;
	s->nnets = 2;
	s->machine_type = "q35";
	s->firmware = "uefi";
	s->guest_agent = true;
	s->kernel = "/var/lib/hypersdk/boot/vmlinuz";
	s->initrd = "/var/lib/hypersdk/boot/initrd.img";
	s->cmdline = HOSTILE_CMDLINE;
	s->user_data = HOSTILE_USERDATA;
}

/* The spec text the daemon stores: the JSON of a spec with userData. */
static char *spec_text(void)
{
	json_object *o = json_object_new_object(), *ci = json_object_new_object();
	char *t;

	json_object_object_add(ci, "userData",
			       json_object_new_string(HOSTILE_USERDATA));
	json_object_object_add(o, "cpus", json_object_new_int(2));
	json_object_object_add(o, "cloudInit", ci);
	t = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return t;
}

static const char *const paths[] = {
	"/var/lib/hypersdk/images/web-root.qcow2",
	"/var/lib/hypersdk/images/web-data.qcow2",
};

static char *full_xml(const char *spec_json, const char *type)
{
	static struct core_spec s;
	struct be_xml_params p = {
		.name = "web", .ns = "default",
		.uid = "7d4f1a52-3c6b-4e8e-9d2a-0a1b2c3d4e5f", .node = "n1",
		.domain_type = type, .spec = &s, .spec_json = spec_json,
		.disk_paths = paths,
		.seed_iso = "/var/lib/hypersdk/images/web-cidata.iso",
		.network = "default",
		/* As be_boot_fill resolves them from the spec. */
		.kernel = "/var/lib/hypersdk/boot/vmlinuz",
		.initrd = "/var/lib/hypersdk/boot/initrd.img",
		.vnc_password = "Ab3'<&\"",
	};

	full_spec(&s);
	return be_domain_xml(&p);
}

static void has(const char *xml, const char *want)
{
	if (!strstr(xml, want))
		fail_msg("missing in XML: %s\n%s", want, xml);
}

static void test_full_spec(void **state)
{
	char *json = spec_text();
	char *x = full_xml(json, "kvm");

	assert_non_null(x);
	has(x, "<domain type='kvm'>");
	has(x, "<name>web</name>");
	has(x, "<uuid>7d4f1a52-3c6b-4e8e-9d2a-0a1b2c3d4e5f</uuid>");
	has(x, "<hypersdk:vm xmlns:hypersdk=\"https://hypersdk.io/xmlns/vm/1\">");
	has(x, "<hypersdk:namespace>default</hypersdk:namespace>");
	has(x, "<hypersdk:uid>7d4f1a52-3c6b-4e8e-9d2a-0a1b2c3d4e5f</hypersdk:uid>");
	has(x, "<hypersdk:node>n1</hypersdk:node>");
	has(x, "<hypersdk:spec>{&quot;cpus&quot;:2");
	has(x, "<maxMemory slots='16' unit='KiB'>131072</maxMemory>");
	has(x, "<memory unit='KiB'>65536</memory>");
	has(x, "<currentMemory unit='KiB'>65536</currentMemory>");
	has(x, "<vcpu placement='static' current='2'>4</vcpu>");
	has(x, "<cell id='0' cpus='0-3' memory='65536' unit='KiB'/>");
	has(x, "<os firmware='efi'>");
	has(x, "<feature enabled='no' name='secure-boot'/>");
	has(x, "<type machine='q35'>hvm</type>");
	has(x, "<kernel>/var/lib/hypersdk/boot/vmlinuz</kernel>");
	has(x, "<initrd>/var/lib/hypersdk/boot/initrd.img</initrd>");
	has(x, "<acpi/>");
	has(x, "<cpu mode='host-passthrough'");
	has(x, "name='arch-capabilities'");
	has(x, "<source file='/var/lib/hypersdk/images/web-root.qcow2'/>");
	has(x, "<target dev='vda' bus='virtio'/>");
	has(x, "<boot order='1'/>");
	has(x, "<source file='/var/lib/hypersdk/images/web-data.qcow2'/>");
	has(x, "<target dev='vdb' bus='virtio'/>");
	has(x, "<driver name='qemu' type='qcow2'");
	has(x, "device='cdrom'");
	has(x, "<source file='/var/lib/hypersdk/images/web-cidata.iso'/>");
	has(x, "<target dev='sda' bus='sata'/>");
	has(x, "<interface type='network'>");
	has(x, "<source network='default'/>");
	has(x, "<interface type='user'>");
	has(x, "<model type='virtio'/>");
	has(x, "<serial type='pty'>");
	has(x, "<console type='pty'>");
	has(x, "<graphics type='vnc' autoport='yes' listen='127.0.0.1' "
	       "passwd='Ab3&apos;&lt;&amp;&quot;'>");
	has(x, "<target type='virtio' name='org.qemu.guest_agent.0'/>");
	has(x, "<source mode='bind'/>");
	has(x, "<on_poweroff>destroy</on_poweroff>");
	has(x, "<on_reboot>restart</on_reboot>");
	has(x, "<on_crash>destroy</on_crash>");
	/* Only one boot order: the data disk has none. */
	assert_null(strstr(strstr(x, "<boot order='1'/>") + 1, "<boot order"));
	free(x);
	free(json);
}

static void test_escaping(void **state)
{
	char *json = spec_text();
	char *x = full_xml(json, "kvm");

	assert_non_null(x);
	assert_null(strstr(x, "<evil"));
	assert_null(strstr(x, "]]>"));
	assert_null(strstr(x, "<!--"));
	assert_null(strstr(x, "<x>"));
	/* The only </hypersdk:spec> is the real closing tag. */
	assert_ptr_equal(strstr(x, "</hypersdk:spec>"),
			 strchr(strstr(x, "<hypersdk:spec>") + 1, '<'));
	has(x, "&lt;/cmdline&gt;&lt;evil a=&apos;1&apos;/&gt; &amp; "
	       "&quot;q&quot; ]]&gt; &lt;!-- x</cmdline>");
	has(x, "&apos;&lt;\\/hypersdk:spec&gt;&apos;");
	has(x, "&amp;amp;");
	free(x);
	free(json);
}

static void test_tcg_minimal(void **state)
{
	struct core_disk d = { .name = "root", .size = 64ULL << 20 };
	struct core_net n = { .name = "default", .type = "pod-network" };
	struct core_spec s = { .cpus = 1, .memory = 64ULL << 20, .disks = &d,
			       .ndisks = 1, .nets = &n, .nnets = 1 };
	const char *p1[] = { "/p/vm-root.qcow2" };
	struct be_xml_params p = { .name = "vm", .ns = "default", .uid = "u-1",
				   .node = "n1", .domain_type = "qemu",
				   .spec = &s, .spec_json = NULL,
				   .disk_paths = p1 };
	char *x = be_domain_xml(&p);

	assert_non_null(x);
	has(x, "<domain type='qemu'>");
	has(x, "<model fallback='allow'>qemu64</model>");
	has(x, "<vcpu placement='static'>1</vcpu>");
	has(x, "<memory unit='KiB'>65536</memory>");
	has(x, "<type>hvm</type>");
	has(x, "<interface type='user'>");      /* no network: user mode */
	has(x, "<hypersdk:spec>{}</hypersdk:spec>");
	assert_null(strstr(x, "<uuid>"));       /* "u-1" is not a UUID */
	assert_null(strstr(x, "firmware="));
	assert_null(strstr(x, "<kernel>"));
	assert_null(strstr(x, "cdrom"));
	assert_null(strstr(x, "guest_agent"));
	assert_null(strstr(x, "<boot order"));
	free(x);
}

/* Without max_cpus/max_memory in the spec there is room to grow: vCPUs
 * up to min(host CPUs, 8), memory up to 2x, capped at the host's. */
static void test_default_max(void **state)
{
	struct core_spec s = { .cpus = 2, .memory = 64ULL << 20 };
	struct be_xml_params p = { .name = "vm", .domain_type = "kvm",
				   .spec = &s, .host_cpus = 32,
				   .host_memory = 1ULL << 30 };
	char *x = be_domain_xml(&p);

	assert_non_null(x);
	has(x, "<vcpu placement='static' current='2'>8</vcpu>");
	has(x, "<maxMemory slots='16' unit='KiB'>131072</maxMemory>");
	has(x, "<memory unit='KiB'>65536</memory>");
	has(x, "<cell id='0' cpus='0-7' memory='65536' unit='KiB'/>");
	free(x);
	/* A small host caps both; max below current is raised to current. */
	p.host_cpus = 1;
	p.host_memory = 96ULL << 20;
	x = be_domain_xml(&p);
	assert_non_null(x);
	has(x, "<vcpu placement='static'>2</vcpu>");
	has(x, "<maxMemory slots='16' unit='KiB'>98304</maxMemory>");
	free(x);
	/* No room for one 1 MiB DIMM: no <maxMemory>, no NUMA cell. */
	p.host_memory = 64ULL << 20;
	x = be_domain_xml(&p);
	assert_non_null(x);
	assert_null(strstr(x, "<maxMemory"));
	assert_null(strstr(x, "<numa>"));
	free(x);
	/* The spec's own maximum wins over the defaults. */
	s.max_cpus = 3;
	s.max_memory = 256ULL << 20;
	x = be_domain_xml(&p);
	assert_non_null(x);
	has(x, "<vcpu placement='static' current='2'>3</vcpu>");
	has(x, "<maxMemory slots='16' unit='KiB'>262144</maxMemory>");
	has(x, "<cell id='0' cpus='0-2' memory='65536' unit='KiB'/>");
	free(x);
}

static void test_bad_bytes(void **state)
{
	struct core_spec s = { .cpus = 1, .memory = 1 << 20,
			       .kernel = "/k", .cmdline = "a\x01" "b\xff" "c\t" };
	struct be_xml_params p = { .name = "vm", .domain_type = "qemu",
				   .spec = &s, .kernel = "/k" };
	char *x = be_domain_xml(&p);

	assert_non_null(x);
	has(x, "<cmdline>a?b?c&#9;</cmdline>");
	free(x);
	p.spec = NULL;
	assert_null(be_domain_xml(&p));
}

/* libvirt's own parser and schema accept it, and what it reads back is
 * exactly the hostile text we put in. */
static void test_libvirt_accepts(void **state)
{
	char *json = spec_text();
	char *x = full_xml(json, "kvm");
	virConnectPtr vc;
	virDomainPtr d;
	char *back, *meta;

	virSetErrorFunc(NULL, quiet);
	vc = virConnectOpen("test:///default");
	assert_non_null(vc);
	d = virDomainDefineXMLFlags(vc, x, VIR_DOMAIN_DEFINE_VALIDATE);
	if (!d)
		fail_msg("libvirt rejects: %s", virGetLastErrorMessage());
	back = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
	assert_non_null(back);
	has(back, "&lt;/cmdline&gt;&lt;evil a=&apos;1&apos;/&gt; &amp; "
		  "&quot;q&quot; ]]&gt; &lt;!-- x</cmdline>");
	meta = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT,
				    BE_NS_URI, 0);
	assert_non_null(meta);
	{
		const char *end = meta + strlen(meta);
		const char *el = be_xml_next(meta, end, "spec");
		char *spec = el ? be_xml_text(el, end, "spec") : NULL;

		assert_non_null(spec);
		assert_string_equal(spec, json);
		el = be_xml_next(meta, end, "uid");
		free(spec);
		spec = be_xml_text(el, end, "uid");
		assert_string_equal(spec, "7d4f1a52-3c6b-4e8e-9d2a-0a1b2c3d4e5f");
		free(spec);
	}
	free(meta);
	free(back);
	virDomainUndefine(d);
	virDomainFree(d);
	virConnectClose(vc);
	free(x);
	free(json);
}

static void test_scanner(void **state)
{
	const char *xml =
		"<domain><devices>\n"
		"  <console type='pty' tty='/dev/pts/3'>\n"
		"    <source path='/dev/pts/3'/>\n  </console>\n"
		"  <channel type='unix'><target type='virtio' "
		"name='org.qemu.guest_agent.0' state='connected'/></channel>\n"
		"  <x:note a=\"1 &amp; 2 &#x41;&#66;\">t &lt;x&gt; &quot;</x:note>\n"
		"</devices></domain>";
	const char *end = xml + strlen(xml), *el, *ch;
	char v[64];
	char *t;

	el = be_xml_next(xml, end, "console");
	assert_non_null(el);
	assert_true(be_xml_attr(el, "tty", v, sizeof(v)));
	assert_string_equal(v, "/dev/pts/3");
	assert_false(be_xml_attr(el, "nope", v, sizeof(v)));
	ch = be_xml_next(xml, end, "channel");
	el = be_xml_next(ch, be_xml_end(ch, end, "channel"), "target");
	assert_true(be_xml_attr(el, "state", v, sizeof(v)));
	assert_string_equal(v, "connected");
	el = be_xml_next(xml, end, "note");
	assert_true(be_xml_attr(el, "a", v, sizeof(v)));
	assert_string_equal(v, "1 & 2 AB");
	t = be_xml_text(el, end, "note");
	assert_string_equal(t, "t <x> \"");
	free(t);
	assert_null(be_xml_next(xml, end, "graphics"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_spec),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_tcg_minimal),
		cmocka_unit_test(test_bad_bytes),
		cmocka_unit_test(test_default_max),
		cmocka_unit_test(test_libvirt_accepts),
		cmocka_unit_test(test_scanner),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
