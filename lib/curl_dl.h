/*
 * libcurl, loaded at run time on first use (dlopen), not linked: twilld needs it only for
 * https:// endpoints and HTTP/1.1 (http:// with HTTP/2 goes through lib/h2c.c), and Debian's
 * libcurl pulls ~36 shared objects (OpenSSL, GnuTLS, Kerberos, LDAP...) into a process that
 * links it: ~9 MB of RSS and ~5 ms of loading before main (docs/dependencies.md).
 * 7.85 or later (CURLOPT_PROTOCOLS_STR).
 * <curl/curl.h> still gives the types and constants; every function goes through the table.
 */
#ifndef TWILL_LIB_CURL_DL_H
#define TWILL_LIB_CURL_DL_H

#include <curl/curl.h>

/* The soname loaded: Debian's libcurl4 (libcurl3-gnutls installs libcurl-gnutls.so.4). */
#define CURL_DL_SONAME "libcurl.so.4"

/* Each pointer has the real prototype of the function it names (variadic ones included). */
struct curl_dl {
	__typeof__(curl_global_init) *global_init;
	__typeof__(curl_easy_init) *easy_init;
	__typeof__(curl_easy_setopt) *easy_setopt;
	__typeof__(curl_easy_getinfo) *easy_getinfo;
	__typeof__(curl_easy_pause) *easy_pause;
	__typeof__(curl_easy_strerror) *easy_strerror;
	__typeof__(curl_easy_cleanup) *easy_cleanup;
	__typeof__(curl_slist_append) *slist_append;
	__typeof__(curl_slist_free_all) *slist_free_all;
	__typeof__(curl_multi_init) *multi_init;
	__typeof__(curl_multi_setopt) *multi_setopt;
	__typeof__(curl_multi_add_handle) *multi_add_handle;
	__typeof__(curl_multi_remove_handle) *multi_remove_handle;
	__typeof__(curl_multi_socket_action) *multi_socket_action;
	__typeof__(curl_multi_info_read) *multi_info_read;
	__typeof__(curl_multi_assign) *multi_assign;
	__typeof__(curl_multi_cleanup) *multi_cleanup;
};

/*
 * Loads libcurl and resolves the table, once per process (thread-safe; never unloaded). The
 * table, or NULL with errno ELIBACC once loading failed (then every later call fails the same
 * way, without retrying) and curl_dl_error() saying why and what to install.
 */
const struct curl_dl *curl_dl_load(void);
/* Why loading failed ("" before, or when it succeeded). */
const char *curl_dl_error(void);

#endif
