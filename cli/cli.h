/* hyperctl: the command line.  Two halves that share only flag parsing:
 * k8s.c and k8slist.c speak to Kubernetes (manifests on stdout for
 * kubectl, lists straight from the API server), local.c is a thin shell
 * over the mounted tree.
 *
 * Functions return 0 or -errno; the user's error line is printed where
 * it is found, once, as "hyperctl: <text>". */
#ifndef HYPERSDK_CLI_H
#define HYPERSDK_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Exit statuses: 1 the action failed, 2 the command line is wrong. */
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* One Go-style flag: -name VALUE, --name VALUE, -name=VALUE; booleans
 * take no separate value (-include-memory, -include-memory=false). */
struct cli_flag {
	const char *name;
	bool boolean;
	const char *value;      /* out: NULL when not given */
	bool on;                /* out: booleans */
};

/* Parse argv[0..argc) into flags, Go's flag package style: the first
 * argument that is not a flag (or "--") ends the flags; *rest gets its
 * index.  -EINVAL with the reason printed for an unknown or repeated
 * flag, or a missing value. */
int cli_flags_parse(int argc, char **argv, struct cli_flag *flags,
		    size_t nflags, int *rest);
struct cli_flag *cli_flag(struct cli_flag *flags, size_t nflags,
			  const char *name);

/* Print "hyperctl: <fmt>" and a newline to stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* hyperctl k8s ARGS: returns the exit status. */
int cli_k8s_main(int argc, char **argv);
/* The read-only ops (vm-list, vm-snapshot-list, template-list); flags as
 * cli_k8s_main parsed them.  Returns the exit status. */
int cli_k8s_list(const char *op, const char *kubeconfig, const char *ns,
		 const char *vm);
/* The words each half takes, space-separated, for the usage and for
 * shell completion (hyperctl __complete verbs|ops): CORE_OPS's verbs
 * included, so a new verb is there without touching cli/. */
void cli_k8s_ops(FILE *f);
void cli_local_verbs(FILE *f);
/* hyperctl [-m MOUNT] VERB NAME ...: returns the exit status. */
int cli_local_main(const char *mount, int argc, char **argv);

#endif
