/* hypersdk-mountd: options, daemonizing, signals, and the wiring of the
 * daemon (mountd.h) to the tree (fs) and the dashboard (web). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mountd/mountd.h"
#include "web/web.h"

struct opts {
	char mount[4096];
	char state_dir[4096];
	char pool_dir[4096];
	char kernel_dir[4096];  /* "" : <state>/kernels, off in a cluster */
	char import_dir[4096];  /* --import-dir ("": none) */
	const char *uri;
	char node[CORE_NAME_MAX + 1];
	const char *log_file;
	const char *kubeconfig;
	const char *ns;
	const char *http;       /* ADDR:PORT, or NULL for off */
	const char *http_token_file;
	char http_token[WEB_TOKEN_MAX];
	const char *group;      /* --group: who may create VMs */
	const char *migration_uri;
	/* --storage-class NAME=DIR[:shared] */
	char class_names[BE_CLASSES_MAX][CORE_NAME_MAX + 1];
	char class_dirs[BE_CLASSES_MAX][4096];
	struct be_class classes[BE_CLASSES_MAX];
	int nclasses;
	enum be_accel accel;
	bool foreground, fuse_debug, copy_storage;
	int stop_timeout, stats_interval, restart_backoff;
#define MAX_PEERS 32
	const char *peers[MAX_PEERS];   /* NODE=URI */
	int npeers;
#define MAX_ALLOW 16
	const char *import_allow[MAX_ALLOW];
	struct be_import_policy imp;
	const char *probe;      /* live or ready: probe, don't serve */
	struct carbon_cfg carbon;       /* --carbon-* */
	int carbon_interval;
	struct core_acl acl;    /* --group, resolved */
};

/* Long options without a letter of their own. */
enum { OPT_CARBON_PROVIDER = 256, OPT_CARBON_ZONE, OPT_CARBON_URL,
       OPT_CARBON_TOKEN, OPT_CARBON_FILE, OPT_CARBON_INTERVAL };

static void usage(FILE *f)
{
	fputs("usage: hypersdk-mountd [--mount DIR] [--state-dir DIR] "
	      "[--pool-dir DIR]\n"
	      "         [--kernel-dir DIR]\n"
	      "         [--libvirt URI] [--node NAME] [--accel auto|kvm|tcg]\n"
	      "         [--stop-timeout SECONDS] [--stats-interval SECONDS]\n"
	      "         [--restart-backoff SECONDS]\n"
	      "         [--foreground] [--log-level error|warn|info|debug] "
	      "[--fuse-debug]\n"
	      "         [--log-file FILE] [--kubeconfig FILE] [--namespace NS]\n"
	      "         [--peer NODE=LIBVIRT-URI]... [--migrate-copy-storage]\n"
	      "         [--migration-uri LIBVIRT-URI]\n"
	      "         [--storage-class NAME=DIR[:shared]]...\n"
	      "         [--http ADDR:PORT|off] [--http-token FILE] "
	      "[--group NAME]\n"
	      "         [--import-allow URL-PREFIX]... [--import-dir DIR]\n"
	      "         [--import-max-size BYTES] [--import-timeout SECONDS]\n"
	      "         [--import-low-speed BYTES/S] [--import-stall SECONDS]\n"
	      "         [--import-max N]\n"
	      "         [--carbon-provider electricitymaps|ukgrid|file|none]\n"
	      "         [--carbon-zone ZONE] [--carbon-url URL] "
	      "[--carbon-token-file FILE]\n"
	      "         [--carbon-file FILE] [--carbon-interval SECONDS]\n"
	      "       hypersdk-mountd --probe live|ready [--mount DIR]\n"
	      "With --kubeconfig (or in a pod, with its service account) the\n"
	      "tree mirrors the hypersdk.io VirtualMachines of the namespace.\n"
	      "The dashboard is at http://127.0.0.1:8080/k8s/vms by default\n"
	      "($HYPERSDK_HTTP sets the default of --http).\n", f);
}

static const char *default_http(void)
{
	const char *e = getenv("HYPERSDK_HTTP");

	if (!e || !*e)
		return WEB_DEFAULT_LISTEN;
	return strcmp(e, "off") ? e : NULL;
}

/* The address part of ADDR:PORT or [ADDR]:PORT, for the log line. */
static const char *http_host(const char *listen)
{
	static char buf[64];
	const char *s = listen[0] == '[' ? listen + 1 : listen;
	const char *e = listen[0] == '[' ? strchr(s, ']') : strrchr(s, ':');
	size_t n = e ? (size_t)(e - s) : strlen(s);

	snprintf(buf, sizeof(buf), "%.*s", (int)(n < 63 ? n : 63), s);
	return buf;
}

static int parse_level(const char *s)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static int parse_accel(const char *s, enum be_accel *a)
{
	if (!strcmp(s, "auto"))
		*a = BE_ACCEL_AUTO;
	else if (!strcmp(s, "kvm"))
		*a = BE_ACCEL_KVM;
	else if (!strcmp(s, "tcg"))
		*a = BE_ACCEL_TCG;
	else
		return -1;
	return 0;
}

static int parse_secs(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end || v < 0 || v > 86400)
		return -1;
	*out = (int)v;
	return 0;
}

static void default_node(char *buf, size_t len)
{
	char host[256] = "";
	size_t j = 0;

	gethostname(host, sizeof(host) - 1);
	/* Node names are DNS labels: lower-case, cut at the first dot. */
	for (size_t i = 0; host[i] && host[i] != '.' && j + 1 < len; i++)
		buf[j++] = (char)(host[i] >= 'A' && host[i] <= 'Z' ?
				  host[i] - 'A' + 'a' : host[i]);
	buf[j] = '\0';
	if (!j)
		snprintf(buf, len, "node");
}

static int set_path(char *dst, size_t len, const char *src)
{
	return snprintf(dst, len, "%s", src) >= (int)len ? -1 : 0;
}

/* NODE=URI, NODE a valid node name and URI a libvirt URI. */
static int add_peer(struct opts *o, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char node[CORE_NAME_MAX + 1], err[CORE_ERR_MAX];

	if (!eq || eq == arg || (size_t)(eq - arg) > CORE_NAME_MAX ||
	    !strstr(eq + 1, "://") || o->npeers == MAX_PEERS) {
		fprintf(stderr, "hypersdk-mountd: --peer %s: want NODE=URI, "
			"e.g. node-2=qemu+tcp://10.0.0.2/system\n", arg);
		return 1;
	}
	snprintf(node, sizeof(node), "%.*s", (int)(eq - arg), arg);
	if (core_name_check(node, err, sizeof(err)) < 0) {
		fprintf(stderr, "hypersdk-mountd: --peer %s: %s\n", arg, err);
		return 1;
	}
	o->peers[o->npeers++] = arg;
	return 0;
}

/* NAME=DIR[:shared]: a disk's storageClass NAME lives in a pool at DIR;
 * shared: DIR is the same storage on every node. */
static int add_class(struct opts *o, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char err[CORE_ERR_MAX];
	int i = o->nclasses;
	size_t dl;

	if (!eq || eq == arg || (size_t)(eq - arg) > CORE_NAME_MAX ||
	    eq[1] != '/' || i == BE_CLASSES_MAX) {
		fprintf(stderr, "hypersdk-mountd: --storage-class %s: want "
			"NAME=/DIR[:shared] (at most %d)\n", arg, BE_CLASSES_MAX);
		return 1;
	}
	snprintf(o->class_names[i], sizeof(o->class_names[i]), "%.*s",
		 (int)(eq - arg), arg);
	dl = strlen(eq + 1);
	o->classes[i].shared = dl > 7 && !strcmp(eq + 1 + dl - 7, ":shared");
	if (o->classes[i].shared)
		dl -= 7;
	if (core_name_check(o->class_names[i], err, sizeof(err)) < 0 ||
	    dl >= sizeof(o->class_dirs[i]) || memchr(eq + 1, ':', dl)) {
		fprintf(stderr, "hypersdk-mountd: --storage-class %s: %s\n", arg,
			dl >= sizeof(o->class_dirs[i]) ? "folder name too long" :
			memchr(eq + 1, ':', dl) ? "only :shared may follow the "
			"folder" : err);
		return 1;
	}
	for (int j = 0; j < i; j++)
		if (!strcmp(o->class_names[j], o->class_names[i])) {
			fprintf(stderr, "hypersdk-mountd: --storage-class %s: "
				"given twice\n", o->class_names[i]);
			return 1;
		}
	snprintf(o->class_dirs[i], sizeof(o->class_dirs[i]), "%.*s", (int)dl,
		 eq + 1);
	o->classes[i].name = o->class_names[i];
	o->classes[i].dir = o->class_dirs[i];
	o->nclasses++;
	return 0;
}

/* scheme://host[:port]/...: a prefix that ends at the host would also
 * match "host.evil.example" or "host@evil.example". */
static int add_allow(struct opts *o, const char *arg)
{
	const char *h = strstr(arg, "://");

	if (!h || h == arg || !strchr(h + 3, '/') || strchr(h + 3, '/') == h + 3 ||
	    o->imp.nallow == MAX_ALLOW) {
		fprintf(stderr, "hypersdk-mountd: --import-allow %s: want "
			"SCHEME://HOST[:PORT]/PATH, e.g. "
			"http://127.0.0.1:8000/ (at most %d)\n", arg, MAX_ALLOW);
		return 1;
	}
	o->import_allow[o->imp.nallow++] = arg;
	return 0;
}

static int parse_size(const char *s, uint64_t *out)
{
	char err[CORE_ERR_MAX];

	return core_qty_parse(s, out, err, sizeof(err)) < 0 || !*out ? -1 : 0;
}

static int parse_count(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end || v < 1 || v > 1 << 30)
		return -1;
	*out = (int)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "mount", 1, 0, 'm' },      { "state-dir", 1, 0, 's' },
		{ "kernel-dir", 1, 0, 'K' },
		{ "pool-dir", 1, 0, 'p' },   { "libvirt", 1, 0, 'c' },
		{ "node", 1, 0, 'n' },       { "accel", 1, 0, 'a' },
		{ "foreground", 0, 0, 'f' }, { "log-level", 1, 0, 'l' },
		{ "stop-timeout", 1, 0, 't' }, { "stats-interval", 1, 0, 'i' },
		{ "fuse-debug", 0, 0, 'd' }, { "help", 0, 0, 'h' },
		{ "log-file", 1, 0, 'L' },  { "kubeconfig", 1, 0, 'k' },
		{ "peer", 1, 0, 'P' },      { "migrate-copy-storage", 0, 0, 'C' },
		{ "namespace", 1, 0, 'N' },  { "http", 1, 0, 'H' },
		{ "http-token", 1, 0, 'T' }, { "group", 1, 0, 'G' },
		{ "import-allow", 1, 0, 'A' }, { "import-dir", 1, 0, 'D' },
		{ "import-max-size", 1, 0, 'S' }, { "import-timeout", 1, 0, 'W' },
		{ "import-low-speed", 1, 0, 'V' }, { "import-stall", 1, 0, 'Z' },
		{ "import-max", 1, 0, 'X' }, { "probe", 1, 0, 'R' },
		{ "restart-backoff", 1, 0, 'B' },
		{ "migration-uri", 1, 0, 'M' },
		{ "storage-class", 1, 0, 'Y' },
		{ "carbon-provider", 1, 0, OPT_CARBON_PROVIDER },
		{ "carbon-zone", 1, 0, OPT_CARBON_ZONE },
		{ "carbon-url", 1, 0, OPT_CARBON_URL },
		{ "carbon-token-file", 1, 0, OPT_CARBON_TOKEN },
		{ "carbon-file", 1, 0, OPT_CARBON_FILE },
		{ "carbon-interval", 1, 0, OPT_CARBON_INTERVAL },
		{ 0, 0, 0, 0 },
	};
	int c, bad = 0, lvl;

	while ((c = getopt_long(argc, argv, "fh", lo, NULL)) != -1) {
		switch (c) {
		case 'm': bad |= set_path(o->mount, sizeof(o->mount), optarg); break;
		case 's': bad |= set_path(o->state_dir, sizeof(o->state_dir), optarg); break;
		case 'K': bad |= set_path(o->kernel_dir, sizeof(o->kernel_dir), optarg); break;
		case 'p': bad |= set_path(o->pool_dir, sizeof(o->pool_dir), optarg); break;
		case 'c': o->uri = optarg; break;
		case 'n': bad |= set_path(o->node, sizeof(o->node), optarg); break;
		case 'a': bad |= parse_accel(optarg, &o->accel); break;
		case 'f': o->foreground = true; break;
		case 'd': o->fuse_debug = true; break;
		case 'L': o->log_file = optarg; break;
		case 'k': o->kubeconfig = optarg; break;
		case 'N': o->ns = optarg; break;
		case 'P': bad |= add_peer(o, optarg); break;
		case 'M': o->migration_uri = optarg; break;
		case 'Y': bad |= add_class(o, optarg); break;
		case 'C': o->copy_storage = true; break;
		case 'H': o->http = strcmp(optarg, "off") ? optarg : NULL; break;
		case 'T': o->http_token_file = optarg; break;
		case 'A': bad |= add_allow(o, optarg); break;
		case 'D': bad |= set_path(o->import_dir, sizeof(o->import_dir), optarg); break;
		case 'S': bad |= parse_size(optarg, &o->imp.max_bytes); break;
		case 'W': bad |= parse_count(optarg, &o->imp.timeout_s); break;
		case 'V': bad |= parse_count(optarg, &o->imp.low_speed); break;
		case 'Z': bad |= parse_secs(optarg, &o->imp.stall_s); break;
		case 'X': bad |= parse_count(optarg, &o->imp.max_running); break;
		case 'G': o->group = optarg; break;
		case 'R': o->probe = optarg; break;
		case 't': bad |= parse_secs(optarg, &o->stop_timeout); break;
		case 'i': bad |= parse_secs(optarg, &o->stats_interval); break;
		case 'B':
			bad |= parse_secs(optarg, &o->restart_backoff) ||
			       o->restart_backoff < 1 || o->restart_backoff > 3600;
			break;
		case OPT_CARBON_PROVIDER:
			bad |= carbon_kind_parse(optarg, &o->carbon.kind) < 0;
			break;
		case OPT_CARBON_ZONE: o->carbon.zone = optarg; break;
		case OPT_CARBON_URL: o->carbon.url = optarg; break;
		case OPT_CARBON_TOKEN: o->carbon.token_file = optarg; break;
		case OPT_CARBON_FILE: o->carbon.file = optarg; break;
		case OPT_CARBON_INTERVAL:
			bad |= parse_secs(optarg, &o->carbon_interval) ||
			       o->carbon_interval < 1 || o->carbon_interval > 86400;
			break;
		case 'l':
			lvl = parse_level(optarg);
			bad |= lvl < 0;
			if (lvl >= 0)
				md_set_log_level(lvl);
			break;
		case 'h': usage(stdout); exit(0);
		default: bad = 1;
		}
	}
	if (bad || optind != argc) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

static bool cluster_mode(const struct opts *o)
{
	return o->kubeconfig || getenv("KUBERNETES_SERVICE_HOST");
}

static int check_opts(struct opts *o, char *err, size_t errlen)
{
	if (!o->pool_dir[0] &&
	    snprintf(o->pool_dir, sizeof(o->pool_dir), "%s/pool",
		     o->state_dir) >= (int)sizeof(o->pool_dir))
		return -ENAMETOOLONG;
	if (!o->node[0])
		default_node(o->node, sizeof(o->node));
	if (core_name_check(o->node, err, errlen) < 0) {
		char tmp[CORE_ERR_MAX];

		snprintf(tmp, sizeof(tmp), "--node: %s", err);
		snprintf(err, errlen, "%s", tmp);
		return -EINVAL;
	}
	if (o->http_token_file &&
	    web_read_token(o->http_token_file, o->http_token,
			   sizeof(o->http_token), err, errlen) < 0)
		return -EINVAL;
	/* Set but empty (an unset Helm value) means none. */
	if (!o->http_token_file && getenv("HYPERSDK_HTTP_TOKEN") &&
	    getenv("HYPERSDK_HTTP_TOKEN")[0] &&
	    web_parse_token(getenv("HYPERSDK_HTTP_TOKEN"), "HYPERSDK_HTTP_TOKEN",
			    o->http_token, sizeof(o->http_token), err,
			    errlen) < 0)
		return -EINVAL;
	if (cluster_mode(o) && o->npeers) {
		snprintf(err, errlen, "--peer is for standalone mode: in a "
			 "cluster each node publishes its own --migration-uri "
			 "in its Lease");
		return -EINVAL;
	}
	if (o->migration_uri && (!strstr(o->migration_uri, "://") ||
				 strlen(o->migration_uri) >= 512)) {
		snprintf(err, errlen, "--migration-uri: a libvirt URI, such as "
			 "qemu+tls://HOST/system");
		return -EINVAL;
	}
	if (o->mount[0] != '/' || o->state_dir[0] != '/' || o->pool_dir[0] != '/' ||
	    (o->kernel_dir[0] && o->kernel_dir[0] != '/')) {
		snprintf(err, errlen, "--mount, --state-dir, --pool-dir and "
			 "--kernel-dir must be absolute paths");
		return -EINVAL;
	}
	return 0;
}

/* The parent waits until the child has mounted (or failed) so that the
 * run command reports a real outcome, then exits. */
static int daemonize(int *notify_fd)
{
	int p[2];
	pid_t pid;
	char buf[CORE_ERR_MAX + 8];
	ssize_t n;

	if (pipe(p) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		n = read(p[0], buf, sizeof(buf) - 1);
		if (n > 0 && buf[0] == '+')
			_exit(0);
		if (n > 0) {
			buf[n] = '\0';
			fprintf(stderr, "hypersdk-mountd: %s\n", buf + 1);
		}
		_exit(1);
	}
	close(p[0]);
	setsid();
	*notify_fd = p[1];
	return 0;
}

static void notify_parent(int fd, const char *err);

/* Logs go to the log file from the start; the original stderr is kept
 * (returned) for the one-line start-up error.  A daemon without
 * --log-file logs to <state-dir>/mountd.log rather than to a terminal it
 * no longer belongs to. */
static int redirect_logs(const struct opts *o, char *err, size_t errlen)
{
	char def[4200];
	const char *path = o->log_file;
	int fd, orig;

	if (!path && o->foreground)
		return -1;
	if (!path) {
		snprintf(def, sizeof(def), "%s/mountd.log", o->state_dir);
		path = def;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
		  0640);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open log file %.300s: %s", path,
			 strerror(errno));
		return -2;
	}
	orig = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	if (!o->foreground)
		dup2(fd, STDOUT_FILENO);
	close(fd);
	return orig;
}

/* logged: stderr goes to a log file, which gets the line too. */
static void report_error(int notify_fd, int orig_err, bool logged,
			 const char *err)
{
	if (notify_fd >= 0)
		notify_parent(notify_fd, err);
	else
		dprintf(orig_err >= 0 ? orig_err : STDERR_FILENO,
			"hypersdk-mountd: %s\n", err);
	if (logged)
		md_log(LOG_ERR_, "%s", err);
}

static void notify_parent(int fd, const char *err)
{
	char buf[CORE_ERR_MAX + 8];
	int n;

	if (fd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "%c%s", err ? '-' : '+', err ? err : "");
	if (write(fd, buf, (size_t)n) < 0)
		md_log(LOG_WARN_, "cannot tell the parent: %s", strerror(errno));
	close(fd);
	if (!err) {
		/* Detach from the terminal only once start-up messages are out. */
		if (!freopen("/dev/null", "r", stdin))
			md_log(LOG_WARN_, "cannot reopen stdin");
	}
}

/* Root writes into the state and pool folders, QEMU reads kernels from
 * the kernel folder, images are copied from the import folder: each must
 * be root's alone before anything is opened in it (the log file
 * included), and is used by the resolved path that was checked.  The
 * import folder is the operator's to make. */
/* A class's folder is held to the pool folder's rule: root writes
 * there too.  A shared one is not made: it is the operator's mount. */
static int trust_classes(struct opts *o, char *err, size_t errlen)
{
	char why[CORE_ERR_MAX / 2], real[4096];
	int rc;

	for (int i = 0; i < o->nclasses; i++) {
		rc = o->classes[i].shared ? 0 : core_mkdir_p(o->class_dirs[i], 0755);
		if (rc == 0)
			rc = core_dir_trusted(o->class_dirs[i], real, sizeof(real),
					      why, sizeof(why));
		else
			snprintf(why, sizeof(why), "%s", strerror(-rc));
		if (rc < 0) {
			snprintf(err, errlen, "--storage-class %s=%.200s: %.250s",
				 o->class_names[i], o->class_dirs[i], why);
			return rc;
		}
		snprintf(o->class_dirs[i], sizeof(o->class_dirs[i]), "%s", real);
	}
	return 0;
}

static int trust_dirs(struct opts *o, char *err, size_t errlen)
{
	char *dirs[] = { o->state_dir, o->pool_dir, o->kernel_dir,
			 o->import_dir };
	const char *what[] = { "--state-dir", "--pool-dir", "--kernel-dir",
			       "--import-dir" };
	char why[CORE_ERR_MAX / 2], real[4096];
	int rc;

	/* kernelBoot in a cluster lets every CRD author choose the files:
	 * only a node that names its folder allows it. */
	if (!o->kernel_dir[0] && !cluster_mode(o))
		snprintf(o->kernel_dir, sizeof(o->kernel_dir), "%.4000s/kernels",
			 o->state_dir);
	for (int i = 0; i < 4; i++) {
		if (!dirs[i][0])
			continue;
		rc = dirs[i] == o->import_dir ? 0 : core_mkdir_p(dirs[i], 0755);
		if (rc == 0)
			rc = core_dir_trusted(dirs[i], real, sizeof(real), why,
					      sizeof(why));
		else
			snprintf(why, sizeof(why), "%s", strerror(-rc));
		if (rc < 0) {
			snprintf(err, errlen, "%s %.200s: %.250s", what[i], dirs[i],
				 why);
			return rc;
		}
		snprintf(dirs[i], sizeof(o->state_dir), "%s", real);
	}
	o->imp.dir = o->import_dir[0] ? o->import_dir : NULL;
	return trust_classes(o, err, errlen);
}

static void sync_state(void *arg, struct web_sync_state *st)
{
	md_outbox(arg, &st->online, &st->queued, &st->oldest);
}

/* The dashboard's socket is bound early, so a port in use fails the
 * start before anything is mounted or defined. */
static int open_web(struct mountd *md, const struct opts *o, struct web **web,
		    char *err, size_t errlen)
{
	struct web_config wc = { .listen = o->http, .token = o->http_token,
				 .ctl = md_fs_ops.ctl, .obj = md_fs_ops.obj,
				 .arg = md, .node = o->node };
	const char *idle = getenv("HYPERSDK_HTTP_IDLE_TIMEOUT");

	if (!o->http)
		return 0;
	if (idle && *idle) {
		char *end;
		unsigned long v = strtoul(idle, &end, 10);

		wc.idle_timeout = *end || v > 3600 ? 0 : (unsigned)v;
		if (wc.idle_timeout < 1) {
			snprintf(err, errlen, "HYPERSDK_HTTP_IDLE_TIMEOUT: "
				 "expected seconds, 1 to 3600");
			return -EINVAL;
		}
	}
	wc.model = md_model(md);
	wc.cluster = md_cluster_mode(md);
	wc.acl = &o->acl;
	if (wc.cluster)
		wc.sync_state = sync_state;
	return web_open(&wc, web, err, errlen);
}

/* SIGTERM, SIGINT and SIGHUP must reach the thread in fs_run, which is
 * the one that wakes the FUSE loop: blocked here, before any thread is
 * made, so every thread (libvirt's, ours) inherits the mask; fs_run
 * unblocks them for itself. */
static void block_stop_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* The group whose members may create VMs.  A missing group is not fatal
 * (a fresh machine has none yet): only root may act until it exists and
 * the daemon restarts. */
static void resolve_group(struct core_acl *acl, const char *name)
{
	struct group gr, *res = NULL;
	char buf[16384];

	acl->has_group = getgrnam_r(name, &gr, buf, sizeof(buf), &res) == 0
			 && res;
	acl->gid = acl->has_group ? res->gr_gid : 0;
}

static void config(struct opts *o, struct md_config *c)
{
	*c = (struct md_config){
		.node = o->node, .uri = o->uri, .state_dir = o->state_dir,
		.pool_dir = o->pool_dir,
		.kernel_dir = o->kernel_dir[0] ? o->kernel_dir : NULL,
		.cluster = cluster_mode(o), .kubeconfig = o->kubeconfig,
		.ns = o->ns, .accel = o->accel,
		.stop_timeout_s = o->stop_timeout,
		.stats_interval_s = o->stats_interval,
		.restart_backoff_s = (unsigned)o->restart_backoff,
		.migration_uri = o->migration_uri,
		.classes = o->classes, .nclasses = (size_t)o->nclasses,
		.peers = o->peers, .npeers = (size_t)o->npeers,
		.copy_storage = o->copy_storage, .imp = o->imp, .acl = o->acl,
		.carbon = o->carbon,
		.carbon_interval_s = (unsigned)o->carbon_interval,
	};
	c->imp.allow = o->import_allow;
}

/* Teardown order: operations end before the tree and the dashboard
 * their writers came through; the daemon's threads after them. */
static int serve(struct opts *o, int *notify_fd, char *err, size_t errlen)
{
	const char *group = o->group ? o->group : "hypersdk";
	struct fs_config fc = { .ops = &md_fs_ops, .mountpoint = o->mount,
				.debug = o->fuse_debug };
	struct md_config mc;
	struct mountd *md = NULL;
	struct fs *fs = NULL;
	struct web *web = NULL;
	char what[256];
	int rc;

	resolve_group(&o->acl, group);
	config(o, &mc);
	rc = fs_check(o->mount, err, errlen);
	if (rc == 0)
		rc = md_open(&mc, &md, err, errlen);
	if (rc < 0)
		return rc;
	fc.arg = md;
	fc.acl = o->acl;
	fc.model = md_model(md);
	rc = open_web(md, o, &web, err, errlen);
	if (rc == 0)
		rc = fs_mount(&fc, &fs, err, errlen);
	if (rc == 0)
		rc = md_start(md);
	if (rc == 0 && web)
		rc = web_start(web, err, errlen);
	if (rc == 0 && web)
		md_log(LOG_INFO_, "dashboard on http://%s%s%s:%d/k8s/vms",
		       strchr(o->http, ']') ? "[" : "", http_host(o->http),
		       strchr(o->http, ']') ? "]" : "", web_port(web));
	/* Only now: a refusal to start stays one line. */
	if (rc == 0 && !o->acl.has_group)
		md_log(LOG_WARN_, "group %s does not exist: only root may use "
		       "the tree (groupadd %s, then restart)", group, group);
	if (rc == 0) {
		md_describe(md, what, sizeof(what));
		md_log(LOG_INFO_, "serving %s (%s)", o->mount, what);
		notify_parent(*notify_fd, NULL);
		*notify_fd = -1;
		rc = fs_run(fs);
		md_log(LOG_INFO_, "unmounting %s; VMs keep running", o->mount);
	}
	web_quiesce(web);
	md_quiesce(md);
	fs_free(fs);
	web_free(web);
	md_close(md);
	return rc;
}

/* A probe's answer is its exit status; the reason goes to stdout, which
 * the kubelet shows in the pod's events. */
static int probe(const struct opts *o)
{
	char err[CORE_ERR_MAX] = "";
	int rc = md_probe(o->mount, o->probe, err, sizeof(err));

	printf("%s: %s\n", o->probe, rc < 0 ? err : "ok");
	return rc == -EINVAL ? 2 : rc < 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .mount = "/run/hypersdk", .state_dir = "/var/lib/hypersdk",
			  .uri = "qemu:///system", .stop_timeout = 30,
			  .stats_interval = 2, .http = default_http(),
			  .restart_backoff = CORE_BACKOFF_FIRST_S,
			  .imp = { .max_bytes = BE_IMPORT_MAX_BYTES,
				   .timeout_s = BE_IMPORT_TIMEOUT_S,
				   .low_speed = BE_IMPORT_LOW_SPEED,
				   .stall_s = BE_IMPORT_STALL_S,
				   .max_running = BE_IMPORT_MAX_RUNNING } };
	char err[CORE_ERR_MAX] = "";
	int rc, notify_fd = -1, orig_err = -1;
	bool logged = false;

	if (parse_args(argc, argv, &o) < 0)
		return 2;
	if (o.probe)
		return probe(&o);
	block_stop_signals();
	rc = check_opts(&o, err, sizeof(err));
	if (rc == 0)
		rc = trust_dirs(&o, err, sizeof(err));
	if (rc == 0 && !o.foreground)
		rc = daemonize(&notify_fd);
	if (rc == 0) {
		orig_err = redirect_logs(&o, err, sizeof(err));
		rc = orig_err == -2 ? -EIO : 0;
		logged = orig_err >= 0;
	}
	/* A forked daemon reports through the pipe to its parent: the
	 * caller's stderr must not stay open here (a `| tail` would wait for
	 * the daemon to exit). */
	if (notify_fd >= 0 && orig_err >= 0) {
		close(orig_err);
		orig_err = -1;
	}
	if (rc == 0)
		rc = serve(&o, &notify_fd, err, sizeof(err));
	if (rc < 0) {
		if (!err[0])
			snprintf(err, sizeof(err), "%s", strerror(-rc));
		report_error(notify_fd, orig_err, logged, err);
	}
	if (orig_err >= 0)
		close(orig_err);
	return rc < 0 ? 1 : 0;
}
