/*
 * A growable NUL-terminated byte buffer: the one used to collect a child's output
 * (lib/proc.c) and to build iptables-restore input (daemon/iptables.c).
 */
#ifndef TWILL_LIB_STRBUF_H
#define TWILL_LIB_STRBUF_H

#include <stddef.h>
#include <string.h>

struct strbuf {
	char *p; /* NULL until the first byte; NUL-terminated after */
	size_t len, cap;
};

/* Append @n bytes of @s (may hold NUL). 0 or -ENOMEM (@b unchanged). Does not log. */
int strbuf_add(struct strbuf *b, const char *s, size_t n);

static inline int strbuf_str(struct strbuf *b, const char *s)
{
	return strbuf_add(b, s, strlen(s));
}

/* Frees the bytes and empties @b (reusable after); NULL-safe. */
void strbuf_free(struct strbuf *b);

#endif
