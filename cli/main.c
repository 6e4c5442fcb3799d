/* hyperctl: dispatch, usage and the Go-style flag parser that the seed's
 * "hyperctl k8s -op vm-list -namespace default" spelling needs. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f)
{
	fputs("usage: hyperctl k8s -op OP [-vm NAME] [flags]   (manifests for "
	      "kubectl apply -f -)\n"
	      "       hyperctl [-m MOUNT] VERB NAME [args...]  (over the mounted "
	      "tree)\nk8s ops: ", f);
	cli_k8s_ops(f);
	fputs("\nk8s flags: -vm -cpus -memory -disk -image -template -target "
	      "-target-node\n"
	      "           -snapshot -include-memory -namespace -kubeconfig -name\n"
	      "verbs: ", f);
	cli_local_verbs(f);
	fputs("\nSee hyperctl(1).\n", f);
}

/* hyperctl __complete verbs|ops: the words, for the shell's completion. */
static int complete(const char *what)
{
	if (!strcmp(what, "verbs"))
		cli_local_verbs(stdout);
	else if (!strcmp(what, "ops"))
		cli_k8s_ops(stdout);
	else
		return CLI_EXIT_USAGE;
	putchar('\n');
	return 0;
}

void cli_err(const char *fmt, ...)
{
	va_list ap;

	fputs("hyperctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

struct cli_flag *cli_flag(struct cli_flag *flags, size_t nflags,
			  const char *name)
{
	for (size_t i = 0; i < nflags; i++)
		if (!strcmp(flags[i].name, name))
			return &flags[i];
	return NULL;
}

static int set_bool(struct cli_flag *f, const char *v)
{
	if (!v || !strcmp(v, "true") || !strcmp(v, "1")) {
		f->on = true;
	} else if (!strcmp(v, "false") || !strcmp(v, "0")) {
		f->on = false;
	} else {
		cli_err("-%s: want true or false, not \"%s\"", f->name, v);
		return -EINVAL;
	}
	f->value = v ? v : "true";
	return 0;
}

/* One flag at argv[*i]; advances *i past its value. */
static int one_flag(int argc, char **argv, int *i, struct cli_flag *flags,
		    size_t nflags)
{
	const char *a = argv[*i] + 1;
	char name[64];
	const char *eq, *v = NULL;
	struct cli_flag *f;
	size_t n;

	if (*a == '-')
		a++;
	eq = strchr(a, '=');
	n = eq ? (size_t)(eq - a) : strlen(a);
	if (n == 0 || n >= sizeof(name)) {
		cli_err("bad flag \"%s\"", argv[*i]);
		return -EINVAL;
	}
	memcpy(name, a, n);
	name[n] = '\0';
	f = cli_flag(flags, nflags, name);
	if (!f) {
		cli_err("unknown flag -%s", name);
		return -EINVAL;
	}
	if (f->value) {
		cli_err("flag -%s given twice", name);
		return -EINVAL;
	}
	if (eq)
		v = eq + 1;
	if (f->boolean)
		return set_bool(f, v);
	if (!v) {
		if (*i + 1 >= argc) {
			cli_err("flag -%s needs a value", name);
			return -EINVAL;
		}
		v = argv[++*i];
	}
	f->value = v;
	return 0;
}

int cli_flags_parse(int argc, char **argv, struct cli_flag *flags,
		    size_t nflags, int *rest)
{
	int i, r;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		}
		if (argv[i][0] != '-' || !argv[i][1])
			break;
		r = one_flag(argc, argv, &i, flags, nflags);
		if (r < 0)
			return r;
	}
	*rest = i;
	return 0;
}

static bool is_help(const char *a)
{
	return !strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "-help") ||
	       !strcmp(a, "help");
}

int main(int argc, char **argv)
{
	struct cli_flag g[] = {
		{ .name = "m" }, { .name = "mount" },
		{ .name = "h", .boolean = true },
		{ .name = "help", .boolean = true },
	};
	const char *mount;
	int rest;

	if (argc > 1 && !strcmp(argv[1], "k8s"))
		return cli_k8s_main(argc - 2, argv + 2);
	if (argc == 3 && !strcmp(argv[1], "__complete"))
		return complete(argv[2]);
	if (argc > 1 && is_help(argv[1])) {
		usage(stdout);
		return 0;
	}
	if (cli_flags_parse(argc - 1, argv + 1, g, 4, &rest) < 0) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (g[2].on || g[3].on) {
		usage(stdout);
		return 0;
	}
	if (g[0].value && g[1].value) {
		cli_err("-m and -mount are the same flag");
		return CLI_EXIT_USAGE;
	}
	mount = g[0].value ? g[0].value : g[1].value;
	if (!mount)
		mount = getenv("HYPERSDK_MOUNT");
	if (!mount || !*mount)
		mount = "/run/hypersdk";
	if (rest + 1 >= argc) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	return cli_local_main(mount, argc - 1 - rest, argv + 1 + rest);
}
