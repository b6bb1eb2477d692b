/*
 * --iface-regex: Go (RE2) syntax translated into POSIX ERE for regcomp(), with
 * RE2's limits and a bound on the compiled size (see iface_regex.h).
 */
#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/iface_regex.h"

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

/* "(" or "(?:": open a group. */
static int rx_open(struct rx *t, const char **pp)
{
	const char *p = *pp;

	if (p[1] == '?') {
		if (p[2] != ':')
			return rx_fail(t, "\"%.3s\" is not supported (only (?: and a leading (?i))",
			               p);
		*pp = p + 2;
	}
	if (t->depth >= RX_DEPTH)
		return rx_fail(t, "nests too deeply (more than %d groups)", RX_DEPTH);
	rx_commit(&t->st[t->depth]);
	rx_frame_init(&t->st[++t->depth]);
	return rx_put(t, "(", 1);
}

/* ")": close a group; it becomes one atom of the enclosing one. */
static int rx_close(struct rx *t)
{
	struct rx_frame *f = &t->st[t->depth];
	bool nullable;

	if (t->depth == 0)
		return rx_fail(t, "unexpected )");
	rx_commit(f);
	nullable = f->nullable || f->alt_nullable;
	t->depth--;
	rx_atom(t, f->size ? f->size : 1, f->size ? f->eps : 1, nullable);
	t->st[t->depth].last.prod = f->prod;
	return rx_put(t, ")", 1);
}

static int rx_alt(struct rx *t)
{
	struct rx_frame *f = &t->st[t->depth];

	rx_commit(f);
	f->nullable = f->nullable || f->alt_nullable;
	f->alt_nullable = true;
	f->size = rx_add(f->size, 1);
	return rx_put(t, "|", 1);
}

/*
 * Translate the element at *@pp and leave *@pp on its last byte. @rep: the
 * repetition operator just before it, if any; *@ret_rep: this one, if it is one.
 */
static int rx_step(struct rx *t, const char **pp, const char *rep, const char **ret_rep)
{
	const char *p = *pp;
	int r;

	*ret_rep = NULL;
	switch (*p) {
	case '\\':
		return rx_escape(t, pp);
	case '[':
		return rx_bracket(t, pp);
	case '(':
		return rx_open(t, pp);
	case ')':
		return rx_close(t);
	case '|':
		return rx_alt(t);
	case '*':
	case '+':
	case '?':
	case '{':
		r = rx_repeat(t, pp, rep);
		if (r == 1) { /* RE2 reads this '{' as a literal; ERE needs it escaped */
			rx_atom(t, 1, 0, false);
			return rx_put(t, "\\{", 2);
		}
		*ret_rep = p;
		(*pp)--; /* past the operator */
		return r;
	case '^':
	case '$':
		rx_atom(t, 1, 1, true);
		return rx_put(t, p, 1);
	default:
		rx_atom(t, 1, 0, false);
		return rx_put(t, p, 1);
	}
}

/* After the last byte: balanced, and small enough once compiled. */
static int rx_finish(struct rx *t)
{
	struct rx_frame *root = &t->st[0];
	unsigned long long states;

	if (t->depth > 0)
		return rx_fail(t, "missing closing )");
	rx_commit(root);
	states = rx_add(root->size, rx_mul(root->eps, root->eps));
	if (states > IFACE_REGEX_MAX_STATES)
		return rx_fail(t, "too complex (would expand to %llu%s states; limit %d)", states,
		               states >= RX_CAP ? "+" : "", IFACE_REGEX_MAX_STATES);
	t->buf[t->o] = '\0';
	return 0;
}

static int rx_translate(const char *re2, char *buf, size_t len, int *ret_icase, char *err,
                        size_t errlen)
{
	const char *p, *prev_rep = NULL;
	size_t n = strlen(re2);
	struct rx *t;
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
	for (; r == 0 && *p; p++)
		r = rx_step(t, &p, prev_rep, &prev_rep);
	if (r == 0)
		r = rx_finish(t);
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

int iface_regex_compile(const char *re2, regex_t *re, char *err, size_t errlen)
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
	int r = iface_regex_compile(re2, &re, err, errlen);

	if (r == 0)
		regfree(&re);
	return r;
}
