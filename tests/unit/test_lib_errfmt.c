#include <criterion/criterion.h>
#include <string.h>

#include "lib/errfmt.h"
#include "lib/jsonutil.h"

Test(errfmt, formats_and_truncates)
{
	char err[8];

	errfmt(err, sizeof(err), "%s %d", "value", 12345);
	cr_assert_str_eq(err, "value 1");
	errfmt(NULL, 10, "ignored");
	errfmt(err, 0, "ignored");
	cr_assert_str_eq(err, "value 1");
}

Test(errfmt, quote_bounds_and_masks)
{
	char q[ERRFMT_QUOTE_SIZE], s[ERRFMT_QUOTE_MAX + 2];

	cr_assert_str_eq(errfmt_quote("a\tb\x7f", q), "a?b?");
	memset(s, 'x', ERRFMT_QUOTE_MAX);
	s[ERRFMT_QUOTE_MAX] = '\0';
	cr_assert_eq(strlen(errfmt_quote(s, q)), ERRFMT_QUOTE_MAX); /* exactly 64: not cut */
	s[ERRFMT_QUOTE_MAX] = 'y';
	s[ERRFMT_QUOTE_MAX + 1] = '\0';
	errfmt_quote(s, q);
	cr_assert_eq(strlen(q), ERRFMT_QUOTE_MAX + 3);
	cr_assert_str_eq(q + ERRFMT_QUOTE_MAX, "...");
	cr_assert_str_eq(errfmt_quote_n("abcdef", 3, q), "abc");
	cr_assert_str_eq(errfmt_quote_n("", 0, q), "");
}

Test(jsonutil, type_desc)
{
	json_t *v[] = { json_object(),  json_array(), json_string("s"), json_integer(1),
		        json_real(1.5), json_true(),  json_false(),     json_null() };
	static const char *const coarse[] = { "an object", "an array",  "a string",  "a number",
		                              "a number",  "a boolean", "a boolean", "null" };
	static const char *const exact[] = {
		"an object",           "an array", "a string", "an integer",
		"a fractional number", "true",     "false",    "null"
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		cr_assert_str_eq(json_type_desc(v[i]), coarse[i]);
		cr_assert_str_eq(json_type_desc_exact(v[i]), exact[i]);
		json_decref(v[i]);
	}
}
