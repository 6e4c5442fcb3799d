/* Helpers of sync_smoke (see smoke.h). */
#include "smoke.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define PAIRS 64

struct proxy {
	int lfd, target, port;
	int ctl[2];             /* wakes the loop: 'c' cut, 'f' freeze, 'q' */
	int fds[PAIRS][2];      /* client, server; -1 when free */
	bool frozen[PAIRS];     /* open, but nothing passes any more */
	bool refuse;
	unsigned accepted;
	pthread_mutex_t mu;
	pthread_t th;
};

double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void close_pair(struct proxy *p, int i)
{
	for (int j = 0; j < 2; j++) {
		if (p->fds[i][j] >= 0)
			close(p->fds[i][j]);
		p->fds[i][j] = -1;
	}
	p->frozen[i] = false;
}

/* Relayed pieces go out at once: Nagle against delayed ACKs would add
 * 40 ms to what the test measures. */
static void nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int connect_target(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0)
		nodelay(fd);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void on_accept(struct proxy *p)
{
	int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC), s, i;
	bool refuse;

	if (c < 0)
		return;
	nodelay(c);
	pthread_mutex_lock(&p->mu);
	p->accepted++;
	refuse = p->refuse;
	pthread_mutex_unlock(&p->mu);
	if (refuse || (s = connect_target(p->target)) < 0) {
		close(c);
		return;
	}
	for (i = 0; i < PAIRS && p->fds[i][0] >= 0; i++)
		;
	if (i == PAIRS) {
		close(c);
		close(s);
		return;
	}
	p->fds[i][0] = c;
	p->fds[i][1] = s;
}

/* Copy what is readable on one side to the other; false when done. */
static bool relay(int from, int to)
{
	char buf[65536];
	ssize_t n = read(from, buf, sizeof(buf)), w;

	if (n <= 0)
		return false;
	for (char *q = buf; n > 0; q += w, n -= w) {
		w = write(to, q, (size_t)n);
		if (w <= 0)
			return false;
	}
	return true;
}

static void *loop(void *arg)
{
	struct proxy *p = arg;
	struct pollfd pf[2 + 2 * PAIRS];
	int map[2 + 2 * PAIRS], n;
	char cmd;

	for (;;) {
		n = 0;
		pf[n++] = (struct pollfd){ .fd = p->ctl[0], .events = POLLIN };
		pf[n++] = (struct pollfd){ .fd = p->lfd, .events = POLLIN };
		for (int i = 0; i < PAIRS; i++) {
			for (int j = 0; j < 2 && p->fds[i][0] >= 0 &&
			     !p->frozen[i]; j++) {
				map[n] = i * 2 + j;
				pf[n++] = (struct pollfd){ .fd = p->fds[i][j],
							   .events = POLLIN };
			}
		}
		if (poll(pf, (nfds_t)n, -1) < 0)
			continue;
		if (pf[0].revents && read(p->ctl[0], &cmd, 1) == 1) {
			for (int i = 0; i < PAIRS; i++) {
				if (cmd == 'f')
					p->frozen[i] = p->fds[i][0] >= 0;
				else
					close_pair(p, i);
			}
			if (cmd == 'q')
				return NULL;
			continue;
		}
		if (pf[1].revents)
			on_accept(p);
		for (int k = 2; k < n; k++) {
			int i = map[k] / 2, j = map[k] % 2;

			if (!pf[k].revents || p->fds[i][0] < 0)
				continue;
			if (!relay(p->fds[i][j], p->fds[i][1 - j]))
				close_pair(p, i);
		}
	}
}

int proxy_start(int target, struct proxy **out)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	struct proxy *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	memset(p->fds, 0xff, sizeof(p->fds));
	p->target = target;
	pthread_mutex_init(&p->mu, NULL);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(p->lfd, 64) < 0 ||
	    getsockname(p->lfd, (struct sockaddr *)&a, &al) < 0 ||
	    pipe2(p->ctl, O_CLOEXEC) < 0 ||
	    pthread_create(&p->th, NULL, loop, p) != 0) {
		free(p);
		return -errno;
	}
	p->port = ntohs(a.sin_port);
	*out = p;
	return 0;
}

int proxy_port(struct proxy *p)
{
	return p->port;
}

void proxy_refuse(struct proxy *p, bool refuse)
{
	pthread_mutex_lock(&p->mu);
	p->refuse = refuse;
	pthread_mutex_unlock(&p->mu);
}

void proxy_cut(struct proxy *p)
{
	if (write(p->ctl[1], "c", 1) != 1)
		perror("proxy_cut");
	sleep_ms(20);
}

void proxy_freeze(struct proxy *p)
{
	if (write(p->ctl[1], "f", 1) != 1)
		perror("proxy_freeze");
	sleep_ms(20);
}

unsigned proxy_accepted(struct proxy *p, bool reset)
{
	unsigned n;

	pthread_mutex_lock(&p->mu);
	n = p->accepted;
	if (reset)
		p->accepted = 0;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void proxy_stop(struct proxy *p)
{
	if (write(p->ctl[1], "q", 1) == 1)
		pthread_join(p->th, NULL);
	close(p->lfd);
	close(p->ctl[0]);
	close(p->ctl[1]);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int run(char *const argv[], char *out, size_t outlen)
{
	posix_spawn_file_actions_t fa;
	size_t len = 0;
	int pfd[2], st = 0, r;
	pid_t pid;
	ssize_t n;
	char sink[4096];

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (r != 0) {
		close(pfd[0]);
		return -1;
	}
	for (;;) {
		char *dst = out && len + 1 < outlen ? out + len : sink;
		size_t room = dst == sink ? sizeof(sink) : outlen - len - 1;

		n = read(pfd[0], dst, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (dst != sink)
			len += (size_t)n;
	}
	close(pfd[0]);
	if (out && outlen) {
		out[len] = '\0';
		while (len > 0 && out[len - 1] == '\n')
			out[--len] = '\0';
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
