/* readloop N FILE...: for each FILE, open/read-to-EOF/close it N times
 * (after a warm-up) and print "FILE ns-per-iteration".  The same loop
 * over our status, libfuse's hello_ll and tmpfs gives ratios from one run
 * on one machine. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int once(const char *path)
{
	char buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	close(fd);
	return n < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct timespec a, b;
	long n;

	if (argc < 3 || (n = atol(argv[1])) <= 0) {
		fprintf(stderr, "usage: readloop N FILE...\n");
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		for (long k = 0; k < n / 10 + 1; k++)
			if (once(argv[i]) < 0) {
				perror(argv[i]);
				return 1;
			}
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (long k = 0; k < n; k++)
			once(argv[i]);
		clock_gettime(CLOCK_MONOTONIC, &b);
		printf("%s %.0f\n", argv[i],
		       ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	}
	return 0;
}
