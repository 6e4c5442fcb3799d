/* Who is at the other end of a loopback connection.  Without a token, the
 * dashboard's actions are allowed to the users the tree allows (ctl files
 * are 0200, owned by the daemon's user): any local user can reach
 * 127.0.0.1, so the address alone says nothing.  The kernel lists every
 * TCP socket with its owner in /proc/net/tcp and tcp6; the client's end
 * is the one whose local address is the peer address we accepted and
 * whose remote port is ours. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "web/priv.h"

/* /proc/net/tcp: "sl: LOCAL:PORT REMOTE:PORT st ... uid ...", addresses
 * as the kernel's 32-bit words in host order, ports in hex. */
static bool v4_line(const char *l, const struct sockaddr_in *peer,
		    int port, uid_t *uid)
{
	unsigned la, lp, ra, rp, u;

	if (sscanf(l, "%*d: %8X:%4X %8X:%4X %*X %*X:%*X %*X:%*X %*X %u",
		   &la, &lp, &ra, &rp, &u) != 5)
		return false;
	if (la != peer->sin_addr.s_addr || lp != ntohs(peer->sin_port) ||
	    rp != (unsigned)port)
		return false;
	*uid = (uid_t)u;
	return true;
}

static bool v6_line(const char *l, const struct sockaddr_in6 *peer,
		    int port, uid_t *uid)
{
	unsigned w[4], lp, rp, u;
	uint32_t want[4];

	if (sscanf(l, "%*d: %8X%8X%8X%8X:%4X %*32[0-9A-Fa-f]:%4X %*X %*X:%*X "
		   "%*X:%*X %*X %u", &w[0], &w[1], &w[2], &w[3], &lp, &rp,
		   &u) != 7)
		return false;
	memcpy(want, &peer->sin6_addr, sizeof(want));
	for (int i = 0; i < 4; i++)
		if (w[i] != want[i])
			return false;
	if (lp != ntohs(peer->sin6_port) || rp != (unsigned)port)
		return false;
	*uid = (uid_t)u;
	return true;
}

int web_peer_uid(const struct sockaddr *peer, int port, uid_t *uid)
{
	bool v6 = peer->sa_family == AF_INET6;
	FILE *f = fopen(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", "re");
	char line[512];
	int rc = -ENOENT;

	if (!f)
		return -errno;
	if (peer->sa_family != AF_INET && !v6) {
		rc = -EAFNOSUPPORT;
		goto out;
	}
	while (rc == -ENOENT && fgets(line, sizeof(line), f))
		if (v6 ? v6_line(line, (const struct sockaddr_in6 *)peer, port, uid)
		       : v4_line(line, (const struct sockaddr_in *)peer, port, uid))
			rc = 0;
out:
	fclose(f);
	return rc;
}
