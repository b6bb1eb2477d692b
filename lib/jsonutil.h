/* Small helpers over jansson shared by the JSON parsers. */
#ifndef TWILL_LIB_JSONUTIL_H
#define TWILL_LIB_JSONUTIL_H

#include <jansson.h>

/* The type of @v for a message, with an article: "an object", "a number", "a boolean", "null"... */
const char *json_type_desc(const json_t *v);
/* As json_type_desc, but "an integer"/"a fractional number" and "true"/"false" told apart. */
const char *json_type_desc_exact(const json_t *v);

#endif
