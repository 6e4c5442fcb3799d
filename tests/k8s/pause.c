/* The pause image's program (tests/k8s/node.sh): it holds a pod's
 * namespaces and waits; TERM or INT end it. */
#include <signal.h>
#include <unistd.h>

static void stop(int sig)
{
	(void)sig;
	_exit(0);
}

int main(void)
{
	signal(SIGTERM, stop);
	signal(SIGINT, stop);
	for (;;)
		pause();
}
