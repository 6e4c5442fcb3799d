/* Consoles: every VNC server gets a password, kept across redefines, so
 * a screen on 127.0.0.1 is not every local user's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "backend/priv.h"

int be_vnc_password_new(char *out, size_t len)
{
	static const char abc[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz"
				  "23456789";
	unsigned char r[BE_VNC_PASSWORD_LEN];
	size_t i;

	if (len <= BE_VNC_PASSWORD_LEN ||
	    getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -EIO;
	for (i = 0; i < sizeof(r); i++)
		out[i] = abc[r[i] % (sizeof(abc) - 1)];
	out[i] = '\0';
	return 0;
}

int be_vnc_password_keep(virConnectPtr vc, const char *name, char *out,
			 size_t len)
{
	virDomainPtr d = virDomainLookupByName(vc, name);
	char *xml = d ? virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE |
					    VIR_DOMAIN_XML_SECURE) : NULL;
	const char *el = xml ? be_xml_next(xml, xml + strlen(xml),
					   "graphics") : NULL;
	int rc = 0;

	if (!d)
		virResetLastError();
	if (!el || !be_xml_attr(el, "passwd", out, len) ||
	    strlen(out) != BE_VNC_PASSWORD_LEN)
		rc = be_vnc_password_new(out, len);
	free(xml);
	if (d)
		virDomainFree(d);
	return rc;
}
