/* An image server for tests/security/images.sh, on 127.0.0.1 and an
 * ephemeral port (written to PORTFILE once listening):
 *   /f/NAME           the file NAME of DIR
 *   /redirect?to=URL  302 to URL
 *   /slow             an endless body at 2 bytes/s
 *   /big              an endless body as fast as it goes
 * usage: imgserver DIR PORTFILE */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *dir;

static ssize_t slow_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	sleep(1);
	buf[0] = 'x';
	buf[1] = 'y';
	return 2;
}

static ssize_t big_body(void *cls, uint64_t pos, char *buf, size_t max)
{
	memset(buf, 0, max);
	return (ssize_t)max;
}

static struct MHD_Response *file_response(const char *name)
{
	char path[4096];
	struct stat st;
	int fd;

	if (strchr(name, '/') || !strcmp(name, "..") ||
	    snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return NULL;
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return NULL;
	}
	return MHD_create_response_from_fd((uint64_t)st.st_size, fd);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c,
			      const char *url, const char *method,
			      const char *version, const char *data,
			      size_t *size, void **state)
{
	struct MHD_Response *r = NULL;
	unsigned code = MHD_HTTP_OK;
	const char *to;
	enum MHD_Result ret;

	if (!strncmp(url, "/f/", 3)) {
		r = file_response(url + 3);
	} else if (!strcmp(url, "/redirect") &&
		   (to = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
						     "to"))) {
		r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(r, "Location", to);
		code = MHD_HTTP_FOUND;
	} else if (!strcmp(url, "/slow")) {
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64,
						      slow_body, NULL, NULL);
	} else if (!strcmp(url, "/big")) {
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 65536,
						      big_body, NULL, NULL);
	}
	if (!r) {
		r = MHD_create_response_from_buffer(9, "not found",
						    MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_NOT_FOUND;
	}
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *d;
	sigset_t set;
	FILE *f;
	int sig;

	if (argc != 3) {
		fprintf(stderr, "usage: imgserver DIR PORTFILE\n");
		return 2;
	}
	dir = argv[1];
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
			     MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
			     answer, NULL, MHD_OPTION_SOCK_ADDR, &a,
			     MHD_OPTION_END);
	info = d ? MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
	if (!info || !(f = fopen(argv[2], "w"))) {
		fprintf(stderr, "imgserver: cannot start\n");
		return 1;
	}
	fprintf(f, "%u\n", info->port);
	fclose(f);
	sigwait(&set, &sig);
	/* Slow bodies sleep in their threads: do not wait for them. */
	_exit(0);
}
