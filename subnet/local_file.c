/*
 * The local store's file and lock layer: the map persisted as one JSON file,
 * replaced atomically after every change, shared between processes under an
 * flock() of "<path>.lock"; a file another process replaced is re-read and the
 * differences become events in the map's history.
 */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "lib/fileio.h"
#include "subnet/local_file.h"

static json_t *value_json(const struct lkv *kv, const char **ret_field)
{
	json_t *j = json_stringn(kv->value ? kv->value : "", kv->len);
	char *hex;

	*ret_field = "value";
	if (j)
		return j;
	/* Not UTF-8: keep the bytes in hex. */
	hex = malloc(kv->len * 2 + 1);
	if (!hex)
		return NULL;
	for (size_t i = 0; i < kv->len; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)kv->value[i]);
	hex[kv->len * 2] = '\0';
	j = json_string(hex);
	free(hex);
	*ret_field = "value_hex";
	return j;
}

/* Remember which file @st describes, so file_changed() can tell when someone replaces it. */
static void note_file(struct local_file *f, const struct stat *st)
{
	f->have_id = true;
	f->f_dev = st->st_dev;
	f->f_ino = st->st_ino;
	f->f_mtime = st->st_mtim;
	f->f_size = st->st_size;
}

static int save(struct local_file *f, struct local_map *m)
{
	json_t *root = NULL, *kvs, *leases;
	struct stat st;
	int ret = -ENOMEM;
	char *text = NULL, *line;
	size_t tlen;

	root = json_pack("{s:I,s:I}", "revision", (json_int_t)m->rev, "next_lease_id",
	                 (json_int_t)m->next_lease);
	kvs = json_array();
	leases = json_array();
	if (!root || !kvs || !leases) {
		json_decref(kvs);
		json_decref(leases);
		goto out;
	}
	json_object_set_new(root, "kvs", kvs);
	json_object_set_new(root, "leases", leases);
	for (size_t i = 0; i < m->n_kvs; i++) {
		const struct lkv *kv = &m->kvs[i];
		const char *field;
		json_t *v = value_json(kv, &field);
		json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:I}", "key", kv->key, "create_revision",
		                      (json_int_t)kv->create_rev, "mod_revision",
		                      (json_int_t)kv->mod_rev, "version", (json_int_t)kv->version,
		                      "lease", (json_int_t)kv->lease);

		if (!v || !o) {
			json_decref(v);
			json_decref(o);
			goto out;
		}
		json_object_set_new(o, field, v);
		json_array_append_new(kvs, o);
	}
	for (size_t i = 0; i < m->n_leases; i++) {
		json_t *o = json_pack("{s:I,s:I,s:I}", "ID", (json_int_t)m->leases[i].id, "TTL",
		                      (json_int_t)m->leases[i].ttl, "expires_at_ms",
		                      (json_int_t)m->leases[i].expires_ms);

		if (!o)
			goto out;
		json_array_append_new(leases, o);
	}
	text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	if (!text)
		goto out;
	tlen = strlen(text);
	line = realloc(text, tlen + 2);
	if (!line)
		goto out;
	text = line;
	memcpy(text + tlen, "\n", 2);
	ret = file_write_atomic(f->path, text, tlen + 1, 0600, 0, NULL, 0);
	if (ret < 0)
		goto out;
	if (stat(f->path, &st) == 0)
		note_file(f, &st);
	m->dirty = false;
	ret = 0;
out:
	free(text);
	json_decref(root);
	return ret;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

struct loaded {
	struct lkv *kvs;
	size_t n_kvs;
	struct llease *leases;
	size_t n_leases;
	int64_t rev, next_lease;
};

static void loaded_clear(struct loaded *l)
{
	for (size_t i = 0; l->kvs && i < l->n_kvs; i++)
		lkv_clear(&l->kvs[i]);
	free(l->kvs);
	free(l->leases);
	memset(l, 0, sizeof(*l));
}

static int cmp_lkv(const void *a, const void *b)
{
	return strcmp(((const struct lkv *)a)->key, ((const struct lkv *)b)->key);
}

/* Parse the store file; -ENOENT when absent, -EINVAL when malformed. */
static int load_file(const char *path, struct loaded *ret, struct stat *ret_st)
{
	struct loaded l = { 0 };
	json_error_t jerr;
	json_t *root, *kvs, *leases, *o;
	size_t i;
	int ret_err = -EINVAL;
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	if (fstat(fileno(f), ret_st) < 0) {
		ret_err = -errno;
		fclose(f);
		return ret_err;
	}
	root = json_loadf(f, JSON_ALLOW_NUL, &jerr);
	fclose(f);
	if (!root)
		return -EINVAL;
	l.rev = json_integer_value(json_object_get(root, "revision"));
	l.next_lease = json_integer_value(json_object_get(root, "next_lease_id"));
	kvs = json_object_get(root, "kvs");
	leases = json_object_get(root, "leases");
	if (l.rev < 1 || !json_is_array(kvs) || !json_is_array(leases))
		goto out;
	l.kvs = calloc(json_array_size(kvs) + 1, sizeof(*l.kvs));
	l.leases = calloc(json_array_size(leases) + 1, sizeof(*l.leases));
	if (!l.kvs || !l.leases) {
		ret_err = -ENOMEM;
		goto out;
	}
	json_array_foreach(kvs, i, o) {
		struct lkv *kv = &l.kvs[l.n_kvs];
		const char *key = json_string_value(json_object_get(o, "key"));
		json_t *v = json_object_get(o, "value");
		json_t *hex = json_object_get(o, "value_hex");

		if (!key)
			goto out;
		kv->key = strdup(key);
		if (json_is_string(v)) {
			kv->len = json_string_length(v);
			kv->value = malloc(kv->len + 1);
			if (kv->value) {
				memcpy(kv->value, json_string_value(v), kv->len);
				kv->value[kv->len] = '\0';
			}
		} else if (json_is_string(hex) && json_string_length(hex) % 2 == 0) {
			const char *h = json_string_value(hex);

			kv->len = json_string_length(hex) / 2;
			kv->value = malloc(kv->len + 1);
			for (size_t k = 0; kv->value && k < kv->len; k++) {
				int hi = hexval(h[2 * k]), lo = hexval(h[2 * k + 1]);

				if (hi < 0 || lo < 0) {
					l.n_kvs++;
					goto out;
				}
				kv->value[k] = (char)(hi << 4 | lo);
			}
			if (kv->value)
				kv->value[kv->len] = '\0';
		} else {
			l.n_kvs++;
			goto out;
		}
		l.n_kvs++;
		if (!kv->key || !kv->value) {
			ret_err = -ENOMEM;
			goto out;
		}
		kv->create_rev = json_integer_value(json_object_get(o, "create_revision"));
		kv->mod_rev = json_integer_value(json_object_get(o, "mod_revision"));
		kv->version = json_integer_value(json_object_get(o, "version"));
		kv->lease = json_integer_value(json_object_get(o, "lease"));
	}
	qsort(l.kvs, l.n_kvs, sizeof(*l.kvs), cmp_lkv);
	for (i = 1; i < l.n_kvs; i++)
		if (strcmp(l.kvs[i - 1].key, l.kvs[i].key) == 0)
			goto out;
	json_array_foreach(leases, i, o) {
		struct llease *ll = &l.leases[l.n_leases++];

		ll->id = json_integer_value(json_object_get(o, "ID"));
		ll->ttl = json_integer_value(json_object_get(o, "TTL"));
		ll->expires_ms = json_integer_value(json_object_get(o, "expires_at_ms"));
	}
	if (l.next_lease <= 0)
		l.next_lease = LMAP_FIRST_LEASE;
	*ret = l;
	json_decref(root);
	return 0;
out:
	json_decref(root);
	loaded_clear(&l);
	return ret_err;
}

bool lfile_changed(struct local_file *f)
{
	struct stat st;

	if (stat(f->path, &st) < 0)
		return f->have_id; /* deleted under us: rewrite it */
	return !f->have_id || st.st_dev != f->f_dev || st.st_ino != f->f_ino ||
	       st.st_size != f->f_size || st.st_mtim.tv_sec != f->f_mtime.tv_sec ||
	       st.st_mtim.tv_nsec != f->f_mtime.tv_nsec;
}

/* Replace the in-memory state by the file's; the differences become events. */
static int reload(struct local_file *f, struct local_map *m)
{
	struct loaded l;
	struct stat st;
	int64_t rev;
	size_t i = 0, j = 0;
	int r = load_file(f->path, &l, &st);

	if (r == -ENOENT) {
		m->dirty = true; /* recreate it from memory */
		return 0;
	}
	if (r < 0)
		return r;
	rev = l.rev > m->rev ? l.rev : m->rev + 1;
	while (i < m->n_kvs || j < l.n_kvs) {
		int c = i == m->n_kvs ? 1 : j == l.n_kvs ? -1 : strcmp(m->kvs[i].key, l.kvs[j].key);

		if (c < 0) {
			lmap_log_append(m, rev, STORE_EV_DELETE, &m->kvs[i], &m->kvs[i]);
			i++;
		} else if (c > 0) {
			lmap_log_append(m, rev, STORE_EV_PUT, &l.kvs[j], NULL);
			j++;
		} else {
			if (m->kvs[i].mod_rev != l.kvs[j].mod_rev ||
			    m->kvs[i].len != l.kvs[j].len ||
			    memcmp(m->kvs[i].value, l.kvs[j].value, l.kvs[j].len) != 0)
				lmap_log_append(m, rev, STORE_EV_PUT, &l.kvs[j], &m->kvs[i]);
			i++;
			j++;
		}
	}
	lmap_replace(m, l.kvs, l.n_kvs, l.leases, l.n_leases);
	m->rev = rev;
	if (l.next_lease > m->next_lease)
		m->next_lease = l.next_lease;
	note_file(f, &st);
	m->dirty = rev != l.rev;
	return 0;
}

/* Start of every access: lock, catch up with the file, expire leases. */
void lfile_txn_begin(struct local_file *f, struct local_map *m)
{
	while (flock(f->lockfd, LOCK_EX) < 0 && errno == EINTR)
		;
	if (lfile_changed(f))
		reload(f, m); /* a malformed file is kept out and rewritten by our next save */
	lmap_expire_due(m, lfile_now_ms());
}

int lfile_txn_end(struct local_file *f, struct local_map *m)
{
	int r = 0;

	if (m->dirty)
		r = save(f, m);
	flock(f->lockfd, LOCK_UN);
	return r;
}

int64_t lfile_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int lfile_open(struct local_file *f, const char *path)
{
	char *slash;
	int r;

	memset(f, 0, sizeof(*f));
	f->lockfd = -1;
	f->path = strdup(path);
	f->dir = strdup(path);
	if (!f->path || !f->dir || asprintf(&f->lockpath, "%s.lock", path) < 0) {
		f->lockpath = NULL;
		return -ENOMEM;
	}
	slash = strrchr(f->dir, '/');
	if (slash == f->dir)
		f->dir[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(f->dir, ".");
	r = file_mkdir_p(f->dir, 0755);
	if (r < 0)
		return r;
	f->lockfd = open(f->lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	return f->lockfd < 0 ? -errno : 0;
}

void lfile_close(struct local_file *f)
{
	if (f->lockfd >= 0)
		close(f->lockfd);
	f->lockfd = -1;
	free(f->path);
	free(f->lockpath);
	free(f->dir);
	f->path = f->lockpath = f->dir = NULL;
}

int lfile_load(struct local_file *f, struct local_map *m)
{
	struct loaded l;
	struct stat st;
	int r;

	while (flock(f->lockfd, LOCK_EX) < 0 && errno == EINTR)
		;
	r = load_file(f->path, &l, &st);
	if (r == 0) {
		lmap_replace(m, l.kvs, l.n_kvs, l.leases, l.n_leases);
		m->rev = l.rev;
		m->next_lease = l.next_lease;
		note_file(f, &st);
	} else if (r == -ENOENT) {
		m->dirty = true;
	} else {
		flock(f->lockfd, LOCK_UN);
		return r;
	}
	m->compact_rev = m->rev; /* history is not persisted */
	lmap_expire_due(m, lfile_now_ms());
	lmap_log_trim(m, m->rev); /* expiries at load time are history too */
	return lfile_txn_end(f, m);
}
