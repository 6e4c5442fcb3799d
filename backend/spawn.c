/* Running helper programs (qemu-img) with an argv, never a shell; for
 * untrusted input, under resource limits. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/priv.h"

extern char **environ;

/* Keep the first len-1 bytes of output (qemu-img info's JSON is short;
 * an error message is the whole output). */
static void take(int fd, char *out, size_t len, size_t *n)
{
	char sink[4096];
	ssize_t r;

	for (;;) {
		bool room = out && *n + 1 < len;

		r = read(fd, room ? out + *n : sink,
			 room ? len - *n - 1 : sizeof(sink));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (room)
			*n += (size_t)r;
	}
	if (out && len)
		out[*n] = '\0';
}

static pid_t start(char *const argv[], int *rfd, bool merge_err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none;
	int pfd[2];
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	/* Not the daemon's blocked TERM: a cancel must reach the tool. */
	sigemptyset(&none);
	posix_spawnattr_init(&at);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	if (merge_err)
		posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	else
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null",
						 O_WRONLY, 0);
	errno = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(pfd[1]);
	if (errno) {
		int e = errno;

		close(pfd[0]);
		return -e;
	}
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	*rfd = pfd[0];
	return pid;
}

/* argv[0] along PATH, found before fork: the child only makes
 * async-signal-safe calls. */
static int find_exec(const char *name, char *out, size_t len)
{
	const char *path = getenv("PATH");
	const char *p = path && *path ? path : "/usr/bin:/bin";

	if (strchr(name, '/'))
		return snprintf(out, len, "%s", name) < (int)len ? 0 : -ENAMETOOLONG;
	while (*p) {
		size_t n = strcspn(p, ":");

		if (snprintf(out, len, "%.*s/%s", (int)n, p, name) < (int)len &&
		    access(out, X_OK) == 0)
			return 0;
		p += n + (p[n] == ':');
	}
	return -ENOENT;
}

static void limit(int what, uint64_t v)
{
	struct rlimit r = { v, v };

	if (v)
		setrlimit(what, &r);
}

static pid_t start_lim(char *const argv[], const struct be_limits *lim,
		       int *rfd)
{
	char exe[4096];
	int pfd[2], rc = find_exec(argv[0], exe, sizeof(exe)), nul;
	sigset_t none;
	pid_t pid;

	if (rc < 0)
		return rc;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	sigemptyset(&none);
	pid = fork();
	if (pid == 0) {
		nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		limit(RLIMIT_AS, lim->as_bytes);
		limit(RLIMIT_CPU, (uint64_t)lim->cpu_s);
		limit(RLIMIT_FSIZE, lim->fsize);
		limit(RLIMIT_CORE, 0);
		umask(077);
		/* The daemon's threads block TERM, INT and HUP; the tool
		 * must not inherit that, or cancel could not stop it. */
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(exe, argv);
		_exit(127);
	}
	rc = pid < 0 ? -errno : 0;
	close(pfd[1]);
	if (rc < 0) {
		close(pfd[0]);
		return rc;
	}
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	*rfd = pfd[0];
	return pid;
}

static int run(pid_t pid, int fd, char *out, size_t outlen, time_t deadline,
	       const volatile int *cancel, void (*tick)(void *arg), void *arg)
{
	struct pollfd pf;
	size_t n = 0;
	int st = 0, rc = 0;
	time_t killby = 0;

	pf.fd = fd;
	pf.events = POLLIN;
	for (;;) {
		int r = poll(&pf, 1, 250);

		if (r > 0)
			take(fd, out, outlen, &n);
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		if (cancel && *cancel && rc == 0) {
			kill(pid, SIGTERM);
			rc = -ECANCELED;
			killby = time(NULL) + 5;
		}
		/* A tool that ignores TERM, or runs past the deadline, is
		 * killed; a cancel does not lift the deadline. */
		if ((killby && time(NULL) >= killby) ||
		    (deadline && time(NULL) >= deadline)) {
			kill(pid, SIGKILL);
			if (rc == 0)
				rc = -ETIMEDOUT;
			killby = 0;
			deadline = 0;
		}
		if (tick)
			tick(arg);
	}
	take(fd, out, outlen, &n);
	close(fd);
	if (rc == 0 && WIFSIGNALED(st) &&
	    (WTERMSIG(st) == SIGXCPU || WTERMSIG(st) == SIGKILL))
		rc = -ETIMEDOUT;
	if (rc == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		rc = -EIO;
	return rc;
}

int be_spawn(char *const argv[], char *out, size_t outlen, bool merge_err,
	     const volatile int *cancel, void (*tick)(void *arg), void *arg)
{
	int fd = -1;
	pid_t pid = start(argv, &fd, merge_err);

	if (out && outlen)
		out[0] = '\0';
	if (pid < 0)
		return (int)pid;
	return run(pid, fd, out, outlen, 0, cancel, tick, arg);
}

int be_spawn_lim(char *const argv[], const struct be_limits *lim, char *out,
		 size_t outlen, const volatile int *cancel,
		 void (*tick)(void *arg), void *arg)
{
	int fd = -1;
	pid_t pid = start_lim(argv, lim, &fd);

	if (out && outlen)
		out[0] = '\0';
	if (pid < 0)
		return (int)pid;
	return run(pid, fd, out, outlen, lim->deadline, cancel, tick, arg);
}

/* The last non-empty line of text, for an err line. */
const char *be_last_line(char *text)
{
	char *e, *s;

	e = text + strlen(text);
	while (e > text && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' '))
		*--e = '\0';
	s = strrchr(text, '\n');
	return s ? s + 1 : text;
}
