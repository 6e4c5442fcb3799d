/* readloop N FILE...: for each FILE, open/read-to-EOF/close it N times
 * (after a warm-up) and print "FILE ns-per-iteration".  The same loop
 * over our status, libfuse's hello_ll and tmpfs gives ratios from one run
 * on one machine.  The files take turns in 20 rounds, so a burst of load
 * from elsewhere falls on all of them alike. */
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

#define ROUNDS 20

int main(int argc, char **argv)
{
	double total[64] = { 0 };
	struct timespec a, b;
	long n, per;

	if (argc < 3 || argc > 66 || (n = atol(argv[1])) < ROUNDS) {
		fprintf(stderr, "usage: readloop N FILE... (N >= %d)\n", ROUNDS);
		return 2;
	}
	per = n / ROUNDS;
	for (int i = 2; i < argc; i++)
		for (long k = 0; k < per; k++)
			if (once(argv[i]) < 0) {
				perror(argv[i]);
				return 1;
			}
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 2; i < argc; i++) {
			clock_gettime(CLOCK_MONOTONIC, &a);
			for (long k = 0; k < per; k++)
				once(argv[i]);
			clock_gettime(CLOCK_MONOTONIC, &b);
			total[i - 2] += (b.tv_sec - a.tv_sec) * 1e9 +
					(b.tv_nsec - a.tv_nsec);
		}
	}
	for (int i = 2; i < argc; i++)
		printf("%s %.0f\n", argv[i], total[i - 2] / (per * ROUNDS));
	return 0;
}
