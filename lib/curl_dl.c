#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "lib/curl_dl.h"

static struct curl_dl table;
static const struct curl_dl *loaded;
static char why[512];
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define SYM(field, name)                              \
	{                                             \
		offsetof(struct curl_dl, field), name \
	}

static const struct {
	size_t off;
	const char *name;
} syms[] = {
	SYM(global_init, "curl_global_init"),
	SYM(easy_init, "curl_easy_init"),
	SYM(easy_setopt, "curl_easy_setopt"),
	SYM(easy_getinfo, "curl_easy_getinfo"),
	SYM(easy_pause, "curl_easy_pause"),
	SYM(easy_strerror, "curl_easy_strerror"),
	SYM(easy_cleanup, "curl_easy_cleanup"),
	SYM(slist_append, "curl_slist_append"),
	SYM(slist_free_all, "curl_slist_free_all"),
	SYM(multi_init, "curl_multi_init"),
	SYM(multi_setopt, "curl_multi_setopt"),
	SYM(multi_add_handle, "curl_multi_add_handle"),
	SYM(multi_remove_handle, "curl_multi_remove_handle"),
	SYM(multi_socket_action, "curl_multi_socket_action"),
	SYM(multi_info_read, "curl_multi_info_read"),
	SYM(multi_assign, "curl_multi_assign"),
	SYM(multi_cleanup, "curl_multi_cleanup"),
};

static void fail(const char *detail)
{
	snprintf(why, sizeof(why),
	         "https:// and HTTP/1.1 need libcurl (" CURL_DL_SONAME
	         ", Debian package libcurl4): %s",
	         detail ? detail : "cannot load it");
}

static void load(void)
{
	/*
	 * RTLD_LOCAL: libcurl's symbols (and those of what it pulls in) stay out of the global
	 * namespace; RTLD_NOW: a missing symbol fails here, not in the middle of a request.
	 */
	void *h = dlopen(CURL_DL_SONAME, RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		fail(dlerror());
		return;
	}
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *f = dlsym(h, syms[i].name);

		if (!f) {
			fail(dlerror());
			dlclose(h);
			return;
		}
		/* POSIX: dlsym's pointer converts to the function pointer it names */
		memcpy((char *)&table + syms[i].off, &f, sizeof(f));
	}
	loaded = &table;
}

const struct curl_dl *curl_dl_load(void)
{
	pthread_once(&once, load);
	if (!loaded)
		errno = ELIBACC;
	return loaded;
}

const char *curl_dl_error(void)
{
	return why;
}
