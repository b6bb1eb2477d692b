#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/rtnetlink.h>

#include "daemon/iface.h"
#include "lib/log.h"
#include "lib/nl.h"

struct snap_link {
	int ifindex;
	int mtu;
	char name[IF_NAMESIZE];
};

struct snap_addr {
	int ifindex;
	struct in_addr addr;
};

/* One consistent look at the namespace: links and their IPv4 addresses, in dump order. */
struct snap {
	struct snap_link *links;
	size_t n_links, cap_links;
	struct snap_addr *addrs;
	size_t n_addrs, cap_addrs;
	struct nl_sock *sk;
};

/* A growing "tried" list for the final error. */
struct tried {
	char *buf;
	size_t len, used;
};

__attribute__((format(printf, 2, 3))) static void tried_add(struct tried *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->used >= t->len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->used, t->len - t->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->used += (size_t)n;
	if (t->used >= t->len)
		t->used = t->len;
}

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	void *nv;

	if (n < *cap)
		return 0;
	nv = realloc(*v, (*cap ? *cap * 2 : 16) * size);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = *cap ? *cap * 2 : 16;
	return 0;
}

static int link_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct snap *s = ctx;
	struct nl_link l;
	void *v = s->links;

	if (nl_parse_link(nlh, &l) < 0)
		return 0;
	if (grow(&v, &s->cap_links, s->n_links, sizeof(*s->links)) < 0)
		return -ENOMEM;
	s->links = v;
	s->links[s->n_links].ifindex = l.ifindex;
	s->links[s->n_links].mtu = l.mtu;
	memcpy(s->links[s->n_links].name, l.name, sizeof(l.name));
	s->links[s->n_links].name[IF_NAMESIZE - 1] = '\0';
	s->n_links++;
	return 0;
}

static int addr_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct snap *s = ctx;
	struct nl_addr a;
	void *v = s->addrs;

	if (nl_parse_addr(nlh, &a) < 0)
		return 0;
	if (grow(&v, &s->cap_addrs, s->n_addrs, sizeof(*s->addrs)) < 0)
		return -ENOMEM;
	s->addrs = v;
	s->addrs[s->n_addrs].ifindex = a.ifindex;
	s->addrs[s->n_addrs].addr = a.local;
	s->n_addrs++;
	return 0;
}

static void snap_clear(struct snap *s)
{
	free(s->links);
	free(s->addrs);
	nl_sock_close(s->sk);
	memset(s, 0, sizeof(*s));
}

static int snap_take(struct snap *s, char *err, size_t errlen)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->sk = nl_sock_open(NULL, 0);
	if (!s->sk) {
		r = -errno;
		snprintf(err, errlen, "netlink socket: %s", strerror(-r));
		return r;
	}
	r = nl_dump(s->sk, RTM_GETLINK, AF_UNSPEC, link_cb, s);
	if (r == 0)
		r = nl_dump(s->sk, RTM_GETADDR, AF_INET, addr_cb, s);
	if (r < 0) {
		snprintf(err, errlen, "listing interfaces: %s", strerror(-r));
		snap_clear(s);
	}
	return r;
}

static const struct snap_link *link_by_index(const struct snap *s, int ifindex)
{
	for (size_t i = 0; i < s->n_links; i++)
		if (s->links[i].ifindex == ifindex)
			return &s->links[i];
	return NULL;
}

static const struct snap_link *link_by_name(const struct snap *s, const char *name)
{
	for (size_t i = 0; i < s->n_links; i++)
		if (strcmp(s->links[i].name, name) == 0)
			return &s->links[i];
	return NULL;
}

/* Go's IP.IsGlobalUnicast for IPv4 (private ranges included). */
static bool is_global_unicast(struct in_addr a)
{
	uint32_t h = ntohl(a.s_addr);

	return h != 0 && h != 0xffffffffu && (h >> 24) != 127 && (h >> 28) != 0xe &&
	       (h >> 16) != 0xa9fe;
}

static bool is_link_local(struct in_addr a)
{
	return (ntohl(a.s_addr) >> 16) == 0xa9fe;
}

/*
 * The addresses flannel's GetInterfaceIP4Addrs returns, in its order: global
 * unicast first, then link-local. @idx-th of them in *@ret; false past the end.
 */
static bool usable_addr(const struct snap *s, int ifindex, size_t idx, struct in_addr *ret)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < s->n_addrs; i++) {
			struct in_addr a = s->addrs[i].addr;

			if (s->addrs[i].ifindex != ifindex)
				continue;
			if (pass == 0 ? !is_global_unicast(a) : !is_link_local(a))
				continue;
			if (idx-- == 0) {
				*ret = a;
				return true;
			}
		}
	}
	return false;
}

static void to_ipam(struct in_addr a, struct ipam_addr *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->family = AF_INET;
	memcpy(ret->bytes, &a, 4);
}

/* "lo (no IPv4), eth0 (192.0.2.1)" */
static void list_ifaces(const struct snap *s, struct tried *t)
{
	for (size_t i = 0; i < s->n_links; i++) {
		struct in_addr a;
		char buf[INET_ADDRSTRLEN];

		if (usable_addr(s, s->links[i].ifindex, 0, &a))
			inet_ntop(AF_INET, &a, buf, sizeof(buf));
		else
			snprintf(buf, sizeof(buf), "no IPv4");
		tried_add(t, "%s%s (%s)", i ? ", " : "", s->links[i].name, buf);
	}
}

/* flannel's GetInterfaceByIP: the link one of whose usable addresses is @a. */
static const struct snap_link *link_by_addr(const struct snap *s, struct in_addr a)
{
	for (size_t i = 0; i < s->n_links; i++) {
		struct in_addr x;

		for (size_t k = 0; usable_addr(s, s->links[i].ifindex, k, &x); k++)
			if (x.s_addr == a.s_addr)
				return &s->links[i];
	}
	return NULL;
}

/*
 * The --iface-regex translation (RE2 into POSIX ERE) and its limits.
 *
 * glibc's regcomp() expands repetitions by copying the repeated tree ("x+" is
 * "xx*", "x{m,n}" n copies), so nested repetitions grow exponentially, and the
 * epsilon closures of what matches the empty string (x?, x*, (), anchors) grow
 * with the square of their number, far worse inside loops ("(()*)*"). Go's
 * regexp (flanneld) rejects repeat counts above 1000 (nested ones multiplied)
 * and stacked repetition operators; twill rejects the same, and bounds an
 * estimate of the compiled size: nodes (repetitions expanded) plus the square
 * of the nodes that can be crossed without input.
 */
#define RX_DEPTH 256           /* nested groups */
#define RX_CAP   1000000000ULL /* the estimates saturate here */

struct rx_atom {
	unsigned long long size; /* nodes glibc builds for it, repetitions expanded */
	unsigned long long eps;  /* of those, the ones crossed without input */
	unsigned long long prod; /* the largest product of nested counted repetitions */
	bool nullable;           /* matches the empty string */
};

/* An open group: its alternatives so far, the atom a repetition would apply to kept apart. */
struct rx_frame {
	unsigned long long size, eps, prod;
	bool nullable;     /* an earlier alternative matches "" */
	bool alt_nullable; /* the current alternative, without the last atom, matches "" */
	bool has_last;
	struct rx_atom last;
};

struct rx {
	const char *re2; /* the whole pattern, for messages */
	char *buf;
	size_t len, o;
	char *err;
	size_t errlen;
	struct rx_frame st[RX_DEPTH + 1];
	size_t depth;
};

static unsigned long long rx_add(unsigned long long a, unsigned long long b)
{
	return a + b > RX_CAP ? RX_CAP : a + b;
}

static unsigned long long rx_mul(unsigned long long a, unsigned long long b)
{
	return a && b > RX_CAP / a ? RX_CAP : a * b;
}

__attribute__((format(printf, 2, 3))) static int rx_fail(struct rx *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!t->err || !t->errlen)
		return -EINVAL;
	n = snprintf(t->err, t->errlen, "--iface-regex \"%.*s%s\": ", 64, t->re2,
	             strlen(t->re2) > 64 ? "..." : "");
	if (n >= 0 && (size_t)n < t->errlen) {
		va_start(ap, fmt);
		vsnprintf(t->err + n, t->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int rx_put(struct rx *t, const char *s, size_t l)
{
	if (t->o + l >= t->len)
		return rx_fail(t, "too long to translate (%zu bytes of room)", t->len);
	memcpy(t->buf + t->o, s, l);
	t->o += l;
	return 0;
}

static void rx_commit(struct rx_frame *f)
{
	if (!f->has_last)
		return;
	f->size = rx_add(f->size, f->last.size);
	f->eps = rx_add(f->eps, f->last.eps);
	if (f->last.prod > f->prod)
		f->prod = f->last.prod;
	f->alt_nullable = f->alt_nullable && f->last.nullable;
	f->has_last = false;
}

/* A new atom in the innermost group. */
static void rx_atom(struct rx *t, unsigned long long size, unsigned long long eps, bool nullable)
{
	struct rx_frame *f = &t->st[t->depth];

	rx_commit(f);
	f->last = (struct rx_atom){ .size = size, .eps = eps, .prod = 1, .nullable = nullable };
	f->has_last = true;
}

static void rx_frame_init(struct rx_frame *f)
{
	memset(f, 0, sizeof(*f));
	f->prod = 1;
	f->alt_nullable = true;
}

/* RE2's decimal count at @p (no leading zeros), or -1; past 10^8 it saturates at RX_CAP. */
static long long rx_count(const char *p, const char **ret_end)
{
	long long x = 0;

	if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
		return -1;
	for (; *p >= '0' && *p <= '9'; p++)
		x = x >= 100000000 ? (long long)RX_CAP : x * 10 + (*p - '0');
	*ret_end = p;
	return x;
}

/*
 * RE2's {m}, {m,} or {m,n} at @p: true with *@ret_max -1 for {m,} and
 * *@ret_end past the '}'; false when RE2 reads the '{' as a literal.
 */
static bool rx_parse_repeat(const char *p, long long *ret_min, long long *ret_max,
                            const char **ret_end)
{
	long long min, max;

	min = rx_count(p + 1, &p);
	if (min < 0)
		return false;
	max = min;
	if (*p == ',') {
		p++;
		if (*p == '}')
			max = -1;
		else if ((max = rx_count(p, &p)) < 0)
			return false;
	}
	if (*p != '}')
		return false;
	*ret_min = min;
	*ret_max = max;
	*ret_end = p + 1;
	return true;
}

/*
 * A repetition operator at *@pp ("*", "+", "?" or a counted one, with RE2's
 * non-greedy '?' after it): check it as RE2 does, apply it to the last atom,
 * emit it (without the '?', which changes nothing for a match test).
 */
static int rx_repeat(struct rx *t, const char **pp, const char *prev_rep)
{
	struct rx_frame *f = &t->st[t->depth];
	const char *p = *pp, *end;
	long long min, max; /* max -1: unbounded */
	unsigned long long k, opt, factor = 1;
	bool counted = *p == '{';
	struct rx_atom a;

	if (counted) {
		if (!rx_parse_repeat(p, &min, &max, &end))
			return 1; /* a literal '{' */
		if (min > IFACE_REGEX_MAX_REPEAT || max > IFACE_REGEX_MAX_REPEAT)
			return rx_fail(t, "invalid repeat count \"%.*s\" (counts go up to %d)",
			               (int)(end - p), p, IFACE_REGEX_MAX_REPEAT);
		if (max >= 0 && min > max)
			return rx_fail(t, "invalid repeat count \"%.*s\" (minimum above maximum)",
			               (int)(end - p), p);
	} else {
		min = *p == '+' ? 1 : 0;
		max = *p == '?' ? 1 : -1;
		end = p + 1;
	}
	if (*end == '?')
		end++; /* non-greedy */
	if (prev_rep)
		return rx_fail(t, "invalid nested repetition operator \"%.*s\"",
		               (int)(end - prev_rep), prev_rep);
	if (!f->has_last)
		return rx_fail(t, "missing argument to repetition operator \"%.*s\"",
		               (int)(end - p), p);
	a = f->last;
	if (counted) {
		/* RE2's repeatIsValid: nested counts multiply to at most 1000 */
		if (max == 0)
			factor = 0;
		else
			factor = (unsigned long long)(max > 0 ? max : min > 0 ? min : 1);
		if ((min >= 2 || max >= 2) && rx_mul(factor, a.prod) > IFACE_REGEX_MAX_REPEAT)
			return rx_fail(
				t,
				"invalid repeat count \"%.*s\" (nested counts multiply to more than %d)",
				(int)(end - p), p, IFACE_REGEX_MAX_REPEAT);
	}
	/* glibc's copies: x* and x? one, x+ two (xx*), x{m,} m+1, x{m,n} n */
	if (max < 0) {
		k = (unsigned long long)min + 1;
		opt = 1;
	} else {
		k = (unsigned long long)max;
		opt = (unsigned long long)(max - min);
	}
	f->last.size = rx_add(rx_mul(a.size, k), 1);
	if (max < 0 && a.nullable) /* a loop over what matches "": one big epsilon cycle */
		f->last.eps = f->last.size;
	else
		f->last.eps = rx_add(rx_mul(a.eps, k), opt);
	f->last.prod = rx_mul(factor, a.prod);
	f->last.nullable = min == 0 || a.nullable;
	*pp = end;
	if (counted)
		return rx_put(t, p, (size_t)(end - p) - (end[-1] == '?'));
	return rx_put(t, p, 1);
}

/* RE2 escapes outside brackets; *@pp at the backslash, left at the escaped character. */
static int rx_escape(struct rx *t, const char **pp)
{
	const char *p = *pp;
	unsigned char c = (unsigned char)p[1];
	const char *cls = NULL;
	char out[4] = { '\\', (char)c, 0, 0 };
	static const char ctl_in[] = "afnrtv", ctl_out[] = "\a\f\n\r\t\v";

	switch (c) {
	case '\0':
		return rx_fail(t, "trailing backslash at end of expression");
	case 'd':
		cls = "[0-9]";
		break;
	case 'D':
		cls = "[^0-9]";
		break;
	case 'w':
		cls = "[[:alnum:]_]";
		break;
	case 'W':
		cls = "[^[:alnum:]_]";
		break;
	case 's':
		cls = "[[:space:]]";
		break;
	case 'S':
		cls = "[^[:space:]]";
		break;
	case '<':
	case '>':
	case '`':
	case '\'':
		/* RE2 literals that glibc's ERE reads as word or buffer anchors */
		out[0] = '[';
		out[2] = ']';
		cls = out;
		break;
	default:
		break;
	}
	*pp = p + 1;
	if (cls) {
		rx_atom(t, 1, 0, false);
		return rx_put(t, cls, strlen(cls));
	}
	if (strchr("pPbBAzQEx", c))
		return rx_fail(t,
		               "\\%c is not supported (twill translates into POSIX ERE: "
		               "\\d \\w \\s and their negations, (?: and a leading (?i))",
		               c);
	if (c >= '0' && c <= '9')
		return rx_fail(
			t, "invalid escape sequence \"\\%c\" (no backreferences or octal escapes)",
			c);
	if (c && strchr(ctl_in, c)) {
		rx_atom(t, 1, 0, false);
		return rx_put(t, &ctl_out[strchr(ctl_in, c) - ctl_in], 1);
	}
	if (c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return rx_fail(t, "invalid escape sequence \"\\%c\"", c);
	rx_atom(t, 1, 0, false);
	return rx_put(t, out, 2); /* escaped punctuation: a literal in ERE too */
}

/* A bracket expression; *@pp at the '[', left at the closing ']'. */
static int rx_bracket(struct rx *t, const char **pp)
{
	const char *p = *pp + 1;
	int r;

	r = rx_put(t, "[", 1);
	if (r == 0 && *p == '^') {
		r = rx_put(t, "^", 1);
		p++;
	}
	if (r == 0 && *p == ']') { /* a leading ']' is a literal */
		r = rx_put(t, "]", 1);
		p++;
	}
	for (; r == 0 && *p && *p != ']'; p++) {
		if (p[0] == '\\' && p[1]) {
			const char *cls = NULL;

			switch (p[1]) {
			case 'd':
				cls = "0-9";
				break;
			case 'w':
				cls = "[:alnum:]_";
				break;
			case 's':
				cls = "[:space:]";
				break;
			case 'D':
			case 'W':
			case 'S':
				return rx_fail(t, "\\%c inside [...] is not supported", p[1]);
			default:
				if (strchr("pPbBAzQEx", p[1]))
					return rx_fail(t, "\\%c is not supported", p[1]);
				break;
			}
			r = cls ? rx_put(t, cls, strlen(cls)) : rx_put(t, p, 2);
			p++;
			continue;
		}
		if (p[0] == '[' && p[1] == ':') {
			const char *end = strstr(p + 2, ":]");

			if (end) {
				r = rx_put(t, p, (size_t)(end + 2 - p));
				p = end + 1;
				continue;
			}
		}
		r = rx_put(t, p, 1);
	}
	if (r < 0)
		return r;
	if (!*p)
		return rx_fail(t, "missing closing ]");
	*pp = p;
	rx_atom(t, 1, 0, false);
	return rx_put(t, "]", 1);
}

static int rx_translate(const char *re2, char *buf, size_t len, int *ret_icase, char *err,
                        size_t errlen)
{
	struct rx *t;
	const char *p, *prev_rep = NULL;
	struct rx_frame *root;
	unsigned long long states;
	size_t n = strlen(re2);
	int r = 0;

	*ret_icase = 0;
	if (errlen)
		err[0] = '\0';
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->re2 = re2;
	t->buf = buf;
	t->len = len;
	t->err = err;
	t->errlen = errlen;
	rx_frame_init(&t->st[0]);
	if (n > IFACE_REGEX_MAX_LEN) {
		r = rx_fail(t, "too long (%zu bytes; limit %d)", n, IFACE_REGEX_MAX_LEN);
		goto out;
	}
	p = re2;
	if (strncmp(p, "(?i)", 4) == 0) {
		*ret_icase = 1;
		p += 4;
	}
	for (; r == 0 && *p; p++) {
		const char *rep = prev_rep;
		struct rx_frame *f = &t->st[t->depth];

		prev_rep = NULL;
		switch (*p) {
		case '\\':
			r = rx_escape(t, &p);
			break;
		case '[':
			r = rx_bracket(t, &p);
			break;
		case '(':
			if (p[1] == '?') {
				if (p[2] != ':') {
					r = rx_fail(
						t,
						"\"%.3s\" is not supported (only (?: and a leading (?i))",
						p);
					break;
				}
				p += 2;
			}
			if (t->depth >= RX_DEPTH) {
				r = rx_fail(t, "nests too deeply (more than %d groups)", RX_DEPTH);
				break;
			}
			rx_commit(f);
			rx_frame_init(&t->st[++t->depth]);
			r = rx_put(t, "(", 1);
			break;
		case ')': {
			bool nullable;

			if (t->depth == 0) {
				r = rx_fail(t, "unexpected )");
				break;
			}
			rx_commit(f);
			nullable = f->nullable || f->alt_nullable;
			t->depth--;
			rx_atom(t, f->size ? f->size : 1, f->size ? f->eps : 1, nullable);
			t->st[t->depth].last.prod = f->prod;
			r = rx_put(t, ")", 1);
			break;
		}
		case '|':
			rx_commit(f);
			f->nullable = f->nullable || f->alt_nullable;
			f->alt_nullable = true;
			f->size = rx_add(f->size, 1);
			r = rx_put(t, "|", 1);
			break;
		case '*':
		case '+':
		case '?':
		case '{': {
			const char *op = p;

			r = rx_repeat(t, &p, rep);
			if (r == 1) { /* RE2 reads this '{' as a literal; ERE needs it escaped */
				rx_atom(t, 1, 0, false);
				r = rx_put(t, "\\{", 2);
				break;
			}
			prev_rep = op;
			p--; /* past the operator */
			break;
		}
		case '^':
		case '$':
			rx_atom(t, 1, 1, true);
			r = rx_put(t, p, 1);
			break;
		default:
			rx_atom(t, 1, 0, false);
			r = rx_put(t, p, 1);
			break;
		}
	}
	if (r < 0)
		goto out;
	if (t->depth > 0) {
		r = rx_fail(t, "missing closing )");
		goto out;
	}
	root = &t->st[0];
	rx_commit(root);
	states = rx_add(root->size, rx_mul(root->eps, root->eps));
	if (states > IFACE_REGEX_MAX_STATES) {
		r = rx_fail(t, "too complex (would expand to %llu%s states; limit %d)", states,
		            states >= RX_CAP ? "+" : "", IFACE_REGEX_MAX_STATES);
		goto out;
	}
	buf[t->o] = '\0';
out:
	free(t);
	return r;
}

int iface_regex_translate(const char *re2, char *buf, size_t len, int *ret_icase)
{
	return rx_translate(re2, buf, len, ret_icase, NULL, 0);
}

/* Every --iface-regex translates into this much ERE at most (\W: 2 bytes, 13 in ERE). */
#define ERE_MAX (IFACE_REGEX_MAX_LEN * 7 + 1)

static int regex_compile(const char *re2, regex_t *re, char *err, size_t errlen)
{
	char *ere = malloc(ERE_MAX);
	int icase, r;

	if (!ere)
		return -ENOMEM;
	r = rx_translate(re2, ere, ERE_MAX, &icase, err, errlen);
	if (r < 0)
		goto out;
	r = regcomp(re, ere, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0));
	if (r != 0) {
		char msg[128];

		regerror(r, re, msg, sizeof(msg));
		snprintf(err, errlen, "--iface-regex \"%s\": %s", re2, msg);
		r = -EINVAL;
	}
out:
	free(ere);
	return r;
}

int iface_regex_check(const char *re2, char *err, size_t errlen)
{
	regex_t re;
	int r = regex_compile(re2, &re, err, errlen);

	if (r == 0)
		regfree(&re);
	return r;
}

/* flannel: each regex against every interface's addresses, then against the names. */
static const struct snap_link *match_regex(const struct snap *s, const regex_t *re,
                                           struct in_addr *ret_addr, bool *ret_has_addr)
{
	for (size_t i = 0; i < s->n_links; i++) {
		struct in_addr a;
		char buf[INET_ADDRSTRLEN];

		for (size_t k = 0; usable_addr(s, s->links[i].ifindex, k, &a); k++) {
			inet_ntop(AF_INET, &a, buf, sizeof(buf));
			if (regexec(re, buf, 0, NULL, 0) == 0) {
				*ret_addr = a;
				*ret_has_addr = true;
				return &s->links[i];
			}
		}
	}
	for (size_t i = 0; i < s->n_links; i++)
		if (regexec(re, s->links[i].name, 0, NULL, 0) == 0)
			return &s->links[i];
	return NULL;
}

struct default_route {
	int oif;
	uint32_t priority;
	bool found;
	bool no_oif;
};

static int default_route_cb(const struct nlmsghdr *nlh, void *ctx)
{
	struct default_route *d = ctx;
	struct nl_route r;

	if (nl_parse_route(nlh, &r) < 0)
		return 0;
	if (r.table != RT_TABLE_MAIN || r.dst_len != 0 || r.type != RTN_UNICAST)
		return 0;
	if (r.oif <= 0) {
		d->no_oif = true;
		return 0;
	}
	if (!d->found || r.priority < d->priority) {
		d->oif = r.oif;
		d->priority = r.priority;
		d->found = true;
	}
	return 0;
}

struct route_get {
	int oif;
	bool has_src;
	struct in_addr src;
	int err;
	char extack[NL_ERRMSG_MAX];
	bool replied;
};

static void route_get_err(void *ctx, void *cookie, int err, const char *extack)
{
	struct route_get *g = ctx;

	(void)cookie;
	g->err = err;
	snprintf(g->extack, sizeof(g->extack), "%s", extack ? extack : "");
}

static void route_get_reply(void *ctx, void *cookie, const struct nlmsghdr *nlh)
{
	struct route_get *g = ctx;
	const uint8_t *p = (const uint8_t *)nlh;
	size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct rtmsg));
	struct nl_route r;

	(void)cookie;
	if (nlh->nlmsg_type != RTM_NEWROUTE || nl_parse_route(nlh, &r) < 0)
		return;
	g->replied = true;
	g->oif = r.oif;
	/* RTA_PREFSRC is the one attribute nl_parse_route() leaves out */
	while (off + sizeof(struct rtattr) <= nlh->nlmsg_len) {
		struct rtattr rta;

		memcpy(&rta, p + off, sizeof(rta));
		if (rta.rta_len < sizeof(rta) || off + rta.rta_len > nlh->nlmsg_len)
			break;
		if (rta.rta_type == RTA_PREFSRC && rta.rta_len == RTA_LENGTH(4)) {
			memcpy(&g->src, p + off + RTA_LENGTH(0), 4);
			g->has_src = true;
		}
		off += RTA_ALIGN(rta.rta_len);
	}
}

static int route_get(struct nl_sock *sk, struct in_addr dst, struct route_get *g)
{
	struct nl_batch *b = nl_batch_new(sk, route_get_err, route_get_reply, g);
	int r;

	if (!b)
		return -errno;
	memset(g, 0, sizeof(*g));
	r = nl_batch_getroute(b, dst, NULL);
	if (r == 0)
		r = nl_batch_commit(b);
	nl_batch_free(b);
	if (r < 0)
		return r;
	if (g->err < 0)
		return g->err;
	return g->replied && g->oif > 0 ? 0 : -ENETUNREACH;
}

static int fill(const struct snap *s, const struct snap_link *l, const struct in_addr *addr,
                const struct iface_sel *sel, struct be_extif *ret, char *err, size_t errlen)
{
	struct in_addr a;

	if (addr) {
		a = *addr;
	} else if (!usable_addr(s, l->ifindex, 0, &a)) {
		snprintf(err, errlen, "interface %s has no IPv4 address", l->name);
		return -EADDRNOTAVAIL;
	}
	if (l->mtu <= 0) {
		snprintf(err, errlen, "failed to determine MTU for interface %s", l->name);
		return -EINVAL;
	}
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->name, sizeof(ret->name), "%s", l->name);
	ret->ifindex = l->ifindex;
	ret->mtu = l->mtu;
	to_ipam(a, &ret->iface_addr);
	ret->public_ip = sel->public_ip ? *sel->public_ip : ret->iface_addr;
	return 0;
}

static int choose_default(const struct snap *s, const struct iface_sel *sel, struct be_extif *ret,
                          char *err, size_t errlen)
{
	struct default_route d = { 0 };
	const struct snap_link *l;
	int r;

	if (sel->public_ip && sel->public_ip->family == AF_INET) {
		struct in_addr a;

		memcpy(&a, sel->public_ip->bytes, 4);
		l = link_by_addr(s, a);
		if (l) {
			log_debug("interface %s holds the public IP", l->name);
			return fill(s, l, &a, sel, ret, err, errlen);
		}
		/* flannel fails here; twill takes the default route (the public IP is a NAT address) */
		log_debug("no interface holds the public IP: using the default route's");
	}
	r = nl_dump(s->sk, RTM_GETROUTE, AF_INET, default_route_cb, &d);
	if (r < 0) {
		snprintf(err, errlen, "failed to get default interface: listing routes: %s",
		         strerror(-r));
		return r;
	}
	if (!d.found) {
		snprintf(
			err, errlen,
			d.no_oif
				? "failed to get default interface: found a default route but could not determine its interface; use --iface"
				: "failed to get default interface: no IPv4 default route; use --iface, --iface-regex or --iface-can-reach");
		return -ENODEV;
	}
	l = link_by_index(s, d.oif);
	if (!l) {
		snprintf(err, errlen, "failed to get default interface: no interface with index %d",
		         d.oif);
		return -ENODEV;
	}
	return fill(s, l, NULL, sel, ret, err, errlen);
}

int iface_choose(const struct iface_sel *sel, struct be_extif *ret, char *err, size_t errlen)
{
	struct snap s;
	regex_t *res = NULL;
	size_t n_res = 0;
	char tbuf[IFACE_ERR_MAX];
	struct tried t = { tbuf, sizeof(tbuf), 0 };
	int r;

	tbuf[0] = '\0';
	if (errlen)
		err[0] = '\0';
	if (sel->n_regexes) {
		res = calloc(sel->n_regexes, sizeof(*res));
		if (!res)
			return -ENOMEM;
		for (; n_res < sel->n_regexes; n_res++) {
			r = regex_compile(sel->regexes[n_res], &res[n_res], err, errlen);
			if (r < 0)
				goto out;
		}
	}
	r = snap_take(&s, err, errlen);
	if (r < 0)
		goto out;

	if (sel->n_ifaces == 0 && sel->n_regexes == 0 && !(sel->can_reach && *sel->can_reach)) {
		r = choose_default(&s, sel, ret, err, errlen);
		goto out_snap;
	}

	for (size_t i = 0; i < sel->n_ifaces; i++) {
		const char *spec = sel->ifaces[i];
		const struct snap_link *l;
		struct in_addr a;

		if (inet_pton(AF_INET, spec, &a) == 1) {
			l = link_by_addr(&s, a);
			if (l) {
				r = fill(&s, l, &a, sel, ret, err, errlen);
				goto out_snap;
			}
			tried_add(&t, "%s--iface %s: no interface has this address",
			          t.used ? "; " : "", spec);
			continue;
		}
		l = link_by_name(&s, spec);
		if (!l) {
			tried_add(&t, "%s--iface %s: no such interface", t.used ? "; " : "", spec);
			continue;
		}
		if (!usable_addr(&s, l->ifindex, 0, &a)) {
			tried_add(&t, "%s--iface %s: no IPv4 address", t.used ? "; " : "", spec);
			continue;
		}
		r = fill(&s, l, &a, sel, ret, err, errlen);
		goto out_snap;
	}

	for (size_t i = 0; i < n_res; i++) {
		struct in_addr a;
		bool has_addr = false;
		const struct snap_link *l = match_regex(&s, &res[i], &a, &has_addr);

		if (l && (has_addr || usable_addr(&s, l->ifindex, 0, &a))) {
			r = fill(&s, l, &a, sel, ret, err, errlen);
			goto out_snap;
		}
		if (l)
			tried_add(&t, "%s--iface-regex %s: matches %s, which has no IPv4 address",
			          t.used ? "; " : "", sel->regexes[i], l->name);
		else
			tried_add(&t, "%s--iface-regex %s: matches no interface",
			          t.used ? "; " : "", sel->regexes[i]);
	}

	if (sel->can_reach && *sel->can_reach) {
		struct route_get g;
		struct in_addr dst;

		if (inet_pton(AF_INET, sel->can_reach, &dst) != 1) {
			tried_add(&t, "%s--iface-can-reach %s: not an IPv4 address",
			          t.used ? "; " : "", sel->can_reach);
		} else if ((r = route_get(s.sk, dst, &g)) < 0) {
			tried_add(&t, "%s--iface-can-reach %s: %s%s%s", t.used ? "; " : "",
			          sel->can_reach, strerror(-r), g.extack[0] ? ": " : "", g.extack);
		} else {
			const struct snap_link *l = link_by_index(&s, g.oif);

			if (l) {
				r = fill(&s, l, g.has_src ? &g.src : NULL, sel, ret, err, errlen);
				goto out_snap;
			}
			tried_add(&t,
			          "%s--iface-can-reach %s: route via unknown interface index %d",
			          t.used ? "; " : "", sel->can_reach, g.oif);
		}
	}

	tried_add(&t, "; interfaces: ");
	list_ifaces(&s, &t);
	snprintf(err, errlen,
	         "no interface matches the given --iface/--iface-regex/--iface-can-reach (%s)",
	         tbuf);
	r = -ENODEV;
out_snap:
	snap_clear(&s);
out:
	for (size_t i = 0; i < n_res; i++)
		regfree(&res[i]);
	free(res);
	return r;
}

/* Go's IP.IsGlobalUnicast for IPv6: not unspecified, loopback, multicast or link-local. */
static bool is_global6(const struct in6_addr *a)
{
	return !IN6_IS_ADDR_UNSPECIFIED(a) && !IN6_IS_ADDR_LOOPBACK(a) &&
	       !IN6_IS_ADDR_MULTICAST(a) && !IN6_IS_ADDR_LINKLOCAL(a);
}

int iface_ipv6_addr(int ifindex, struct ipam_addr *ret)
{
	struct nl_addr addrs[64];
	struct nl_sock *sk = nl_sock_open(NULL, 0);
	bool tentative = false;
	int n;

	if (!sk)
		return -errno;
	n = nl_addr_list_af(sk, AF_INET6, ifindex, addrs, sizeof(addrs) / sizeof(addrs[0]));
	nl_sock_close(sk);
	if (n < 0)
		return n;
	/* The kernel lists an interface's addresses newest first; flannel takes the first. */
	for (int i = 0; i < n; i++) {
		if (!is_global6(&addrs[i].local6))
			continue;
		/* Tunnels cannot bind a tentative address yet: wait for DAD. */
		if (addrs[i].flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) {
			tentative = true;
			continue;
		}
		memset(ret, 0, sizeof(*ret));
		ret->family = AF_INET6;
		memcpy(ret->bytes, &addrs[i].local6, 16);
		return 0;
	}
	return tentative ? -EAGAIN : -EADDRNOTAVAIL;
}
