/* Standard base64 (RFC 4648, alphabet A-Z a-z 0-9 + /, padded), as etcd's JSON gateway wants. */
#ifndef TWILL_LIB_BASE64_H
#define TWILL_LIB_BASE64_H

#include <stddef.h>

/* Length of the encoding of @len bytes, without the NUL. */
size_t base64_encoded_len(size_t len);
/* Encode @len bytes of @data into a new NUL-terminated string; NULL with errno on failure. */
char *base64_encode(const void *data, size_t len);
/*
 * Decode @len chars of @in (padding required, no whitespace) into a new buffer with a
 * trailing NUL that *@ret_len excludes. 0, -EINVAL on bad input, -ENOMEM.
 */
int base64_decode(const char *in, size_t len, char **ret, size_t *ret_len);

#endif
