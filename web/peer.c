/* Who is at the other end of a loopback connection.  Without a token, the
 * dashboard's actions are allowed to the users the tree allows (ctl files
 * are 0200, owned by the daemon's user): any local user can reach
 * 127.0.0.1, so the address alone says nothing.  The kernel lists every
 * TCP socket with its owner in /proc/net/tcp and tcp6; the client's end
 * is the one whose local address is the peer address we accepted and
 * whose remote address is ours. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "web/priv.h"

/* /proc/net/tcp: "sl: LOCAL:PORT REMOTE:PORT st ... uid ...", addresses
 * as the kernel's 32-bit words in host order, ports in hex.  Only an
 * ESTABLISHED socket (st 01) whose remote end is exactly our end counts:
 * a TIME_WAIT socket of the same local address and port (listed with uid
 * 0) or one connected elsewhere from it must not stand in for it. */
#define ESTABLISHED 1u

static bool v4_line(const char *l, const struct sockaddr_in *peer,
		    const struct sockaddr_in *us, uid_t *uid)
{
	unsigned la, lp, ra, rp, st, u;

	if (sscanf(l, "%*d: %8X:%4X %8X:%4X %X %*X:%*X %*X:%*X %*X %u",
		   &la, &lp, &ra, &rp, &st, &u) != 6)
		return false;
	if (st != ESTABLISHED ||
	    la != peer->sin_addr.s_addr || lp != ntohs(peer->sin_port) ||
	    ra != us->sin_addr.s_addr || rp != ntohs(us->sin_port))
		return false;
	*uid = (uid_t)u;
	return true;
}

static bool same6(const unsigned w[4], const struct in6_addr *a)
{
	uint32_t x[4];

	memcpy(x, a, sizeof(x));
	for (int i = 0; i < 4; i++)
		if (w[i] != x[i])
			return false;
	return true;
}

static bool v6_line(const char *l, const struct sockaddr_in6 *peer,
		    const struct sockaddr_in6 *us, uid_t *uid)
{
	unsigned lw[4], rw[4], lp, rp, st, u;

	if (sscanf(l, "%*d: %8X%8X%8X%8X:%4X %8X%8X%8X%8X:%4X %X %*X:%*X "
		   "%*X:%*X %*X %u", &lw[0], &lw[1], &lw[2], &lw[3], &lp,
		   &rw[0], &rw[1], &rw[2], &rw[3], &rp, &st, &u) != 12)
		return false;
	if (st != ESTABLISHED || !same6(lw, &peer->sin6_addr) ||
	    lp != ntohs(peer->sin6_port) || !same6(rw, &us->sin6_addr) ||
	    rp != ntohs(us->sin6_port))
		return false;
	*uid = (uid_t)u;
	return true;
}

int web_peer_uid(const struct sockaddr *peer, const struct sockaddr *us,
		 uid_t *uid)
{
	bool v6 = peer->sa_family == AF_INET6;
	FILE *f;
	char line[512];
	int rc = -ENOENT;

	if ((peer->sa_family != AF_INET && !v6) ||
	    us->sa_family != peer->sa_family)
		return -EAFNOSUPPORT;
	f = fopen(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", "re");
	if (!f)
		return -errno;
	while (rc == -ENOENT && fgets(line, sizeof(line), f))
		if (v6 ? v6_line(line, (const struct sockaddr_in6 *)peer,
				 (const struct sockaddr_in6 *)us, uid)
		       : v4_line(line, (const struct sockaddr_in *)peer,
				 (const struct sockaddr_in *)us, uid))
			rc = 0;
	fclose(f);
	return rc;
}
