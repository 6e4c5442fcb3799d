/* hyperctl VERB NAME ...: a thin layer over the mounted tree for shell
 * users.  Each verb is one write(2) of the ctl message the user would
 * echo (docs/ctl.md), or a read of status, spec, events or wait; the
 * daemon does all the checking, and its err line is what we print.  The
 * only checks here keep a NAME from leaving $M/vms. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/core.h"

struct ctx {
	const char *mount;
	const char *name;       /* the VM, NULL for list */
};

/* Read a whole file of the tree (their size is 0: read to EOF). */
static int slurp_fd(int fd, char **out, size_t *outlen)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap + 1), *nb;
	ssize_t n;
	int r = -ENOMEM;

	if (!buf)
		goto out;
	for (;;) {
		if (len == cap) {
			nb = realloc(buf, 2 * cap + 1);
			if (!nb)
				goto out;
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR && len == 0) {
			r = -EINTR;
			goto out;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	return r;
}

static int slurp(const char *path, char **out, size_t *outlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -errno;
	r = slurp_fd(fd, out, outlen);
	close(fd);
	return r;
}

static void vm_path(const struct ctx *c, const char *file, char *buf,
		    size_t len)
{
	if (c->name)
		snprintf(buf, len, "%s/vms/%s/%s", c->mount, c->name, file);
	else
		snprintf(buf, len, "%s/vms/%s", c->mount, file);
}

/* "hyperctl: NAME: <the daemon's err line, or strerror>". */
static int fail(const struct ctx *c, const char *errdir_name, int e)
{
	char path[4096], *txt = NULL;
	size_t n = 0;
	struct ctx ec = { c->mount, errdir_name };

	vm_path(&ec, "err", path, sizeof(path));
	/* A missing VM has no err file: then strerror says it. */
	if (slurp(path, &txt, &n) == 0) {
		while (n > 0 && (txt[n - 1] == '\n' || txt[n - 1] == ' '))
			txt[--n] = '\0';
	}
	cli_err("%s: %s", c->name, n ? txt : strerror(e));
	free(txt);
	return CLI_EXIT_FAIL;
}

/* One write(2) of the whole message, as the tree wants (docs/ctl.md). */
static int write_once(const char *path, const char *msg, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int r = 0;

	if (fd < 0)
		return -errno;
	n = write(fd, msg, len);
	if (n < 0)
		r = -errno;
	else if ((size_t)n != len)
		r = -EIO;
	/* A spec is applied at close: its outcome comes back there. */
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

/* Join words into one ctl message. */
static int join(char *buf, size_t len, const char *first, int argc,
		char **argv)
{
	size_t n = (size_t)snprintf(buf, len, "%s", first);

	for (int i = 0; i < argc && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, " %s", argv[i]);
	if (n >= len) {
		cli_err("control message too long");
		return -E2BIG;
	}
	return (int)n;
}

static int do_ctl(const struct ctx *c, const char *verb, int argc,
		  char **argv)
{
	char msg[CORE_MSG_MAX + 1], path[4096];
	int n, r;

	n = join(msg, sizeof(msg), verb, argc, argv);
	if (n < 0)
		return CLI_EXIT_USAGE;
	vm_path(c, "ctl", path, sizeof(path));
	r = write_once(path, msg, (size_t)n);
	return r < 0 ? fail(c, c->name, -r) : 0;
}

static int do_create(const struct ctx *c, int argc, char **argv)
{
	char msg[CORE_MSG_MAX + 1], path[4096];
	struct ctx dir = { c->mount, NULL };
	int n, r;

	n = join(msg, sizeof(msg), "create", argc, argv);
	if (n < 0)
		return CLI_EXIT_USAGE;
	vm_path(&dir, "ctl", path, sizeof(path));
	r = write_once(path, msg, (size_t)n);
	return r < 0 ? fail(c, NULL, -r) : 0;
}

/* cordon|uncordon|drain NODE: nodes/NODE/ctl; its err line is vms/err. */
static int do_node(const struct ctx *c, const char *verb)
{
	char path[4096];
	int r;

	snprintf(path, sizeof(path), "%s/nodes/%s/ctl", c->mount, c->name);
	r = write_once(path, verb, strlen(verb));
	if (r == -ENOENT) {
		cli_err("%s: no such node (ls %s/nodes)", c->name, c->mount);
		return CLI_EXIT_FAIL;
	}
	return r < 0 ? fail(c, NULL, -r) : 0;
}

static bool is_node_verb(const char *v)
{
	for (int i = 0; i < CORE_NV_COUNT; i++)
		if (!strcmp(v, core_node_verb_name(i)))
			return true;
	return false;
}

static int do_cat(const struct ctx *c, const char *file)
{
	char path[4096], *txt = NULL;
	size_t n;
	int r;

	vm_path(c, file, path, sizeof(path));
	r = slurp(path, &txt, &n);
	if (r < 0)
		return fail(c, c->name, -r);
	fwrite(txt, 1, n, stdout);
	free(txt);
	return 0;
}

/* spec NAME: print it; spec NAME FILE|-: replace it with FILE's text. */
static int do_spec(const struct ctx *c, int argc, char **argv)
{
	char path[4096], *txt = NULL;
	size_t n;
	int r;

	if (argc == 0)
		return do_cat(c, "spec");
	if (argc > 1) {
		cli_err("usage: hyperctl spec NAME [FILE|-]");
		return CLI_EXIT_USAGE;
	}
	r = strcmp(argv[0], "-") ? slurp(argv[0], &txt, &n) :
				   slurp_fd(0, &txt, &n);
	if (r < 0) {
		cli_err("%s: %s", argv[0], strerror(-r));
		return CLI_EXIT_FAIL;
	}
	vm_path(c, "spec", path, sizeof(path));
	r = write_once(path, txt, n);
	free(txt);
	return r < 0 ? fail(c, c->name, -r) : 0;
}

static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
}

/* Arm SIGALRM without SA_RESTART, so a blocked read of wait ends. */
static int arm(double secs)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval it = { 0 };

	if (secs <= 0)
		return 0;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		return -errno;
	it.it_value.tv_sec = (time_t)secs;
	it.it_value.tv_usec = (suseconds_t)((secs - (double)(time_t)secs) * 1e6);
	if (it.it_value.tv_sec == 0 && it.it_value.tv_usec == 0)
		it.it_value.tv_usec = 1;
	return setitimer(ITIMER_REAL, &it, NULL) < 0 ? -errno : 0;
}

static bool phase_is(const char *status, const char *phase)
{
	size_t n = strlen(phase);

	return !strncmp(status, "phase ", 6) && !strncmp(status + 6, phase, n) &&
	       (status[6 + n] == '\n' || status[6 + n] == '\0');
}

/* Open wait before reading status: a change between the two then still
 * ends the read at once (docs/wait.md, BUGS). */
static int wait_round(const struct ctx *c, const char *phase, char **out,
		      bool *done)
{
	char wpath[4096], spath[4096], *st = NULL, *txt = NULL;
	size_t n;
	int fd, r;

	vm_path(c, "wait", wpath, sizeof(wpath));
	vm_path(c, "status", spath, sizeof(spath));
	fd = open(wpath, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (phase) {
		r = slurp(spath, &st, &n);
		if (r < 0)
			goto out;
		if ((*done = phase_is(st, phase))) {
			*out = st;
			st = NULL;
			goto out;
		}
	}
	r = slurp_fd(fd, &txt, &n);
	if (r < 0)
		goto out;
	*done = !phase || phase_is(txt, phase);
	*out = txt;
out:
	free(st);
	close(fd);
	return r;
}

/* The phase's canonical name, case aside ("running" is Running). */
static const char *phase_lookup(const char *s)
{
	for (int p = CORE_PHASE_PENDING; p <= CORE_PHASE_UNKNOWN; p++)
		if (!strcasecmp(s, core_phase_name((enum core_phase)p)))
			return core_phase_name((enum core_phase)p);
	return NULL;
}

static int wait_args(int argc, char **argv, const char **phase,
		     double *secs)
{
	char *end;
	const char *v;

	for (int i = 0; i < argc; i++) {
		v = NULL;
		if (!strcmp(argv[i], "-timeout") || !strcmp(argv[i], "--timeout"))
			v = i + 1 < argc ? argv[++i] : "";
		else if (!strncmp(argv[i], "-timeout=", 9))
			v = argv[i] + 9;
		else if (!strncmp(argv[i], "--timeout=", 10))
			v = argv[i] + 10;
		if (v) {
			*secs = strtod(v, &end);
			if (!*v || *end || *secs <= 0 || *secs > 1e6) {
				cli_err("-timeout: want seconds, not \"%s\"", v);
				return -EINVAL;
			}
		} else if (!*phase && phase_lookup(argv[i])) {
			*phase = phase_lookup(argv[i]);
		} else {
			cli_err("wait: bad argument \"%s\" (want a phase such "
				"as Running, or -timeout S)", argv[i]);
			return -EINVAL;
		}
	}
	return 0;
}

static int do_wait(const struct ctx *c, int argc, char **argv)
{
	const char *phase = NULL;
	double secs = 0;
	char *txt = NULL;
	bool done = false;
	int r;

	if (wait_args(argc, argv, &phase, &secs) < 0)
		return CLI_EXIT_USAGE;
	r = arm(secs);
	while (r == 0 && !done) {
		free(txt);
		txt = NULL;
		r = wait_round(c, phase, &txt, &done);
	}
	if (r == -EINTR && timed_out) {
		cli_err("%s: timed out after %gs waiting for %s", c->name, secs,
			phase ? phase : "a change");
		return CLI_EXIT_FAIL;
	}
	if (r < 0)
		return fail(c, c->name, -r);
	fputs(txt, stdout);
	free(txt);
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* NAME and PHASE of every VM, from the first line of each status. */
static int do_list(const struct ctx *c)
{
	char path[4096], **names = NULL, **nn, *st;
	size_t n = 0, len, w = 4;
	struct dirent *de;
	struct ctx vm = *c;
	DIR *d;

	snprintf(path, sizeof(path), "%s/vms", c->mount);
	d = opendir(path);
	if (!d) {
		cli_err("%s: %s", path, strerror(errno));
		return CLI_EXIT_FAIL;
	}
	while ((de = readdir(d))) {
		if ((de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) ||
		    de->d_name[0] == '.' || !strcmp(de->d_name, "ctl") ||
		    !strcmp(de->d_name, "err"))
			continue;
		nn = realloc(names, (n + 1) * sizeof(*names));
		if (!nn)
			break;
		names = nn;
		if (!(names[n] = strdup(de->d_name)))
			break;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n; i++)
		if (strlen(names[i]) > w)
			w = strlen(names[i]);
	printf("%-*s   %s\n", (int)w, "NAME", "PHASE");
	for (size_t i = 0; i < n; i++) {
		vm.name = names[i];
		vm_path(&vm, "status", path, sizeof(path));
		st = NULL;
		if (slurp(path, &st, &len) == 0)
			st[strcspn(st, "\n")] = '\0';
		printf("%-*s   %s\n", (int)w, names[i],
		       st && !strncmp(st, "phase ", 6) ? st + 6 : "?");
		free(st);
		free(names[i]);
	}
	free(names);
	return 0;
}

/* Verbs written to a VM's ctl as they are: every verb of CORE_OPS but
 * vms/ctl's create. */
static bool is_ctl_verb(const char *v)
{
	const struct core_op *op = core_op_by_verb(v);

	return op && !(op->flags & CORE_OPF_DIR);
}

/* A mount without vms/ is the common mistake (daemon not running, or
 * another mount point): say so rather than "no such file". */
static int check_mount(const char *mount)
{
	char path[4096];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/vms/ctl", mount);
	if (stat(path, &sb) == 0)
		return 0;
	cli_err("%s: not a hypersdk mount (is hypersdk-mountd running? "
		"-m MOUNT or $HYPERSDK_MOUNT)", mount);
	return -ENOENT;
}

void cli_local_verbs(FILE *f)
{
	fputs("list status wait spec events", f);
	for (int v = 0; v < CORE_V_COUNT; v++)
		fprintf(f, " %s", core_verb_name(v));
	for (int v = 0; v < CORE_NV_COUNT; v++)
		fprintf(f, " %s", core_node_verb_name(v));
}

int cli_local_main(const char *mount, int argc, char **argv)
{
	const char *verb = argv[0];
	struct ctx c = { mount, argc > 1 ? argv[1] : NULL };
	char err[CORE_ERR_MAX];

	if (strcmp(verb, "list") && !is_ctl_verb(verb) && !is_node_verb(verb) &&
	    strcmp(verb, "create") && strcmp(verb, "status") &&
	    strcmp(verb, "spec") && strcmp(verb, "events") &&
	    strcmp(verb, "wait")) {
		cli_err("unknown verb \"%s\" (see hyperctl --help)", verb);
		return CLI_EXIT_USAGE;
	}
	if (!strcmp(verb, "list") ? argc != 1 : argc < 2) {
		cli_err(!strcmp(verb, "list") ? "usage: hyperctl list" :
			"usage: hyperctl %s NAME [args...]", verb);
		return CLI_EXIT_USAGE;
	}
	if (is_node_verb(verb) && argc != 2) {
		cli_err("usage: hyperctl %s NODE", verb);
		return CLI_EXIT_USAGE;
	}
	if (c.name && core_name_check(c.name, err, sizeof(err)) < 0) {
		cli_err("%s", err);
		return CLI_EXIT_USAGE;
	}
	if (check_mount(mount) < 0)
		return CLI_EXIT_FAIL;
	if (!strcmp(verb, "list"))
		return do_list(&c);
	if (!strcmp(verb, "create"))
		return do_create(&c, argc - 1, argv + 1);
	if (!strcmp(verb, "spec"))
		return do_spec(&c, argc - 2, argv + 2);
	if (!strcmp(verb, "wait"))
		return do_wait(&c, argc - 2, argv + 2);
	if (is_node_verb(verb))
		return do_node(&c, verb);
	if (argc > 2 && (!strcmp(verb, "status") || !strcmp(verb, "events"))) {
		cli_err("usage: hyperctl %s NAME", verb);
		return CLI_EXIT_USAGE;
	}
	if (!strcmp(verb, "status") || !strcmp(verb, "events"))
		return do_cat(&c, verb);
	return do_ctl(&c, verb, argc - 2, argv + 2);
}
