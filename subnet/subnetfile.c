/*
 * The subnet file (COMPAT.md §6): a shell fragment of KEY=VALUE lines written
 * atomically by twilld and read by twilld and twill-docker-opts.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "subnet/subnetfile.h"
#include "lib/errfmt.h"
#include "lib/fileio.h"

#define SUBNETFILE_MAX_SIZE (64 * 1024)
#define VALUE_MAX           128
#define MTU_MIN             68 /* the IPv4 minimum; the kernel refuses less */
#define MTU_MAX             65535

static int format_file(const struct subnetfile *f, char *buf, size_t size)
{
	char p[IPAM_PREFIX_STRLEN];
	size_t n = 0;
	int w;

#define EMIT(...)                                             \
	do {                                                  \
		w = snprintf(buf + n, size - n, __VA_ARGS__); \
		if (w < 0 || (size_t)w >= size - n)           \
			return -ENOBUFS;                      \
		n += (size_t)w;                               \
	} while (0)

	if (f->has_network)
		EMIT("FLANNEL_NETWORK=%s\n", ipam_prefix_format(&f->network, p));
	if (f->has_subnet)
		EMIT("FLANNEL_SUBNET=%s\n", ipam_prefix_format(&f->subnet, p));
	if (f->has_ipv6_network)
		EMIT("FLANNEL_IPV6_NETWORK=%s\n", ipam_prefix_format(&f->ipv6_network, p));
	if (f->has_ipv6_subnet)
		EMIT("FLANNEL_IPV6_SUBNET=%s\n", ipam_prefix_format(&f->ipv6_subnet, p));
	if (f->has_mtu)
		EMIT("FLANNEL_MTU=%d\n", f->mtu);
	if (f->has_ipmasq)
		EMIT("FLANNEL_IPMASQ=%s\n", f->ipmasq ? "true" : "false");
#undef EMIT
	return (int)n;
}

int subnetfile_write(const char *path, const struct subnetfile *f)
{
	char buf[1024];
	int n;

	if (!path || !f || !path[0])
		return -EINVAL;
	n = format_file(f, buf, sizeof(buf));
	if (n < 0)
		return n;
	return file_write_atomic(path, buf, (size_t)n, 0644, FILE_ATOMIC_MKDIR, NULL, 0);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static int parse_prefix_value(const char *v, uint8_t family, struct ipam_prefix *ret)
{
	struct ipam_prefix p;

	if (ipam_prefix_parse(v, &p) < 0 || p.addr.family != family)
		return -EINVAL;
	*ret = p;
	return 0;
}

static int parse_mtu(const char *v, int *ret)
{
	long n = 0;
	size_t i;

	if (!v[0] || (v[0] == '0' && v[1]))
		return -EINVAL;
	for (i = 0; v[i]; i++) {
		if (v[i] < '0' || v[i] > '9' || i >= 5)
			return -EINVAL;
		n = n * 10 + (v[i] - '0');
	}
	if (n < MTU_MIN || n > MTU_MAX)
		return -EINVAL;
	*ret = (int)n;
	return 0;
}

enum key { K_NETWORK, K_SUBNET, K_IPV6_NETWORK, K_IPV6_SUBNET, K_MTU, K_IPMASQ, K_COUNT };

static const struct {
	const char *name;
	const char *expect;
} keys[K_COUNT] = {
	[K_NETWORK] = { "FLANNEL_NETWORK", "an IPv4 prefix such as 10.5.0.0/16" },
	[K_SUBNET] = { "FLANNEL_SUBNET", "an IPv4 address/length such as 10.5.87.1/24" },
	[K_IPV6_NETWORK] = { "FLANNEL_IPV6_NETWORK", "an IPv6 prefix such as fc00:5::/48" },
	[K_IPV6_SUBNET] = { "FLANNEL_IPV6_SUBNET",
	                    "an IPv6 address/length such as fc00:5:0:1::1/64" },
	[K_MTU] = { "FLANNEL_MTU", "an integer from 68 to 65535" },
	[K_IPMASQ] = { "FLANNEL_IPMASQ", "true or false" },
};

static int parse_value(enum key k, const char *v, struct subnetfile *f)
{
	switch (k) {
	case K_NETWORK:
		f->has_network = true;
		return parse_prefix_value(v, AF_INET, &f->network);
	case K_SUBNET:
		f->has_subnet = true;
		return parse_prefix_value(v, AF_INET, &f->subnet);
	case K_IPV6_NETWORK:
		f->has_ipv6_network = true;
		return parse_prefix_value(v, AF_INET6, &f->ipv6_network);
	case K_IPV6_SUBNET:
		f->has_ipv6_subnet = true;
		return parse_prefix_value(v, AF_INET6, &f->ipv6_subnet);
	case K_MTU:
		f->has_mtu = true;
		return parse_mtu(v, &f->mtu);
	case K_IPMASQ:
		f->has_ipmasq = true;
		if (!strcasecmp(v, "true"))
			f->ipmasq = true;
		else if (!strcasecmp(v, "false"))
			f->ipmasq = false;
		else
			return -EINVAL;
		return 0;
	case K_COUNT:
		break;
	}
	return -EINVAL;
}

/* One line without its '\n'; 0 for a known key parsed or anything ignored. */
static int parse_line(const char *s, size_t n, unsigned lineno, struct subnetfile *f, char *err,
                      size_t errlen)
{
	char value[VALUE_MAX], q[ERRFMT_QUOTE_SIZE];
	const char *eq, *v;
	size_t kn, vn;
	unsigned k;

	while (n > 0 && is_space(*s)) {
		s++;
		n--;
	}
	while (n > 0 && is_space(s[n - 1]))
		n--;
	if (n == 0 || s[0] == '#')
		return 0;
	if (n > 7 && !memcmp(s, "export", 6) && is_space(s[6])) {
		s += 7;
		n -= 7;
		while (n > 0 && is_space(*s)) {
			s++;
			n--;
		}
	}
	eq = memchr(s, '=', n);
	if (!eq)
		return 0;
	kn = (size_t)(eq - s);
	for (k = 0; k < K_COUNT; k++)
		if (strlen(keys[k].name) == kn && !memcmp(s, keys[k].name, kn))
			break;
	if (k == K_COUNT)
		return 0;
	v = eq + 1;
	vn = n - kn - 1;
	/* One level of shell quoting, as a hand-edited file might have. */
	if (vn >= 2 && (v[0] == '"' || v[0] == '\'') && v[vn - 1] == v[0]) {
		v++;
		vn -= 2;
	}
	if (vn == 0 || vn >= sizeof(value) || memchr(v, '\0', vn))
		goto bad;
	memcpy(value, v, vn);
	value[vn] = '\0';
	if (parse_value((enum key)k, value, f) < 0)
		goto bad;
	return 0;

bad:
	errfmt(err, errlen, "line %u: %s: \"%s\" is not valid: expected %s", lineno, keys[k].name,
	       errfmt_quote_n(v, vn, q), keys[k].expect);
	return -EINVAL;
}

int subnetfile_parse(const char *buf, size_t len, struct subnetfile *ret, char *err, size_t errlen)
{
	struct subnetfile f = { 0 };
	const char *p = buf, *end, *nl;
	unsigned lineno = 0;
	int r;

	errfmt(err, errlen, "no error");
	if ((!buf && len) || !ret)
		return -EINVAL;
	if (!buf) {
		*ret = f;
		return 0;
	}
	end = buf + len;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		lineno++;
		r = parse_line(p, nl ? (size_t)(nl - p) : (size_t)(end - p), lineno, &f, err,
		               errlen);
		if (r < 0)
			return r;
		if (!nl)
			break;
		p = nl + 1;
	}
	*ret = f;
	return 0;
}

int subnetfile_read(const char *path, struct subnetfile *ret, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t n = 0;
	int r;

	errfmt(err, errlen, "no error");
	if (!path || !ret)
		return -EINVAL;
	r = file_read_all(path, SUBNETFILE_MAX_SIZE, &buf, &n);
	if (r == -EFBIG) {
		errfmt(err, errlen, "larger than %d bytes: not a subnet file", SUBNETFILE_MAX_SIZE);
		return -EINVAL;
	}
	if (r < 0) {
		errfmt(err, errlen, "cannot open: %s", strerror(-r));
		return r;
	}
	r = subnetfile_parse(buf, n, ret, err, errlen);
	free(buf);
	return r;
}
