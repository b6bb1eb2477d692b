/* lib/curl_dl.c: libcurl loaded at run time, every function resolved, once per process. */
#include <errno.h>
#include <string.h>

#include <criterion/criterion.h>

#include "lib/curl_dl.h"
#include "lib/http.h"

Test(curl_dl, loads_every_function_once)
{
	const struct curl_dl *a = curl_dl_load(), *b;
	void *const *fn;
	long code = -1;
	CURL *h;

	cr_assert_not_null(a, "curl_dl_load: %s", curl_dl_error());
	cr_assert_str_empty(curl_dl_error());
	/* every slot of the table is a resolved function */
	fn = (void *const *)a;
	for (size_t i = 0; i < sizeof(*a) / sizeof(void *); i++)
		cr_assert_not_null(fn[i], "slot %zu not resolved", i);
	/* the pointers call the real library (variadic ones included) */
	cr_assert_str_eq(a->easy_strerror(CURLE_OK), "No error");
	h = a->easy_init();
	cr_assert_not_null(h);
	cr_assert_eq(a->easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L), CURLE_OK);
	cr_assert_eq(a->easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code), CURLE_OK);
	cr_assert_eq(code, 0);
	a->easy_cleanup(h);
	b = curl_dl_load();
	cr_assert_eq(a, b, "loaded twice");
}

Test(curl_dl, http_strerror_without_load_failure)
{
	/* no failure to load: ELIBACC reads as strerror, other errors too, either sign */
	cr_assert_not_null(curl_dl_load());
	cr_assert_str_eq(http_strerror(ELIBACC), strerror(ELIBACC));
	cr_assert_str_eq(http_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
}
