#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "subnet/store_util.h"

void store_kv_clear(struct store_kv *kv)
{
	if (!kv)
		return;
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

int store_kv_copy(struct store_kv *dst, const struct store_kv *src)
{
	*dst = *src;
	dst->key = NULL;
	dst->value = NULL;
	if (src->key && !(dst->key = strdup(src->key)))
		goto fail;
	if (src->value) {
		dst->value = malloc(src->value_len + 1);
		if (!dst->value)
			goto fail;
		memcpy(dst->value, src->value, src->value_len);
		dst->value[src->value_len] = '\0';
	}
	return 0;
fail:
	store_kv_clear(dst);
	return -ENOMEM;
}

void store_result_clear(struct store_result *res)
{
	if (!res)
		return;
	for (size_t i = 0; i < res->n_kvs; i++)
		store_kv_clear(&res->kvs[i]);
	free(res->kvs);
	res->kvs = NULL;
	res->n_kvs = 0;
}

void store_events_free(struct store_event *evs, size_t n)
{
	if (!evs)
		return;
	for (size_t i = 0; i < n; i++) {
		store_kv_clear(&evs[i].kv);
		store_kv_clear(&evs[i].prev_kv);
	}
	free(evs);
}

int store_prefix_end(const char *prefix, size_t len, char **ret, size_t *ret_len)
{
	char *end = malloc(len + 1);
	size_t n = len;

	if (!end)
		return -ENOMEM;
	memcpy(end, prefix, len);
	while (n > 0 && (unsigned char)end[n - 1] == 0xff)
		n--;
	if (n == 0) {
		end[0] = '\0';
		*ret = end;
		*ret_len = 1;
		return 0;
	}
	end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
	end[n] = '\0';
	*ret = end;
	*ret_len = n;
	return 0;
}
