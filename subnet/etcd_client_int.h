/*
 * Internals shared by the call layer's two files: etcd_client.c (endpoints, auth, unary
 * calls) and etcd_stream.c (bidirectional streams). Not for other users.
 */
#ifndef TWILL_SUBNET_ETCD_CLIENT_INT_H
#define TWILL_SUBNET_ETCD_CLIENT_INT_H

#include "lib/http.h"
#include "subnet/etcd_client.h"

enum etcd_ep_state { EP_UNKNOWN, EP_UP, EP_DOWN };

struct etcd_ep {
	struct etcd_client *c;
	char *url;
	enum etcd_ep_state state;
	struct etcd_call *probe;  /* Status in flight (race or background) */
	bool racing;              /* that probe belongs to a race */
	struct ev_timer *reprobe; /* background probe of a down endpoint */
	unsigned backoff_ms;
};

struct etcd_client {
	struct ev_loop *loop;
	struct http_client *http;
	struct etcd_ep *eps;
	size_t n_eps;
	long cur;      /* endpoint in use, -1 = none answered (yet) */
	char *all_eps; /* "a,b,c": the endpoint before one is in use */
	char *cafile, *certfile, *keyfile;
	char *username, *password;
	char *token;
	struct etcd_call *auth; /* Authenticate in flight */
	int timeout_ms;
	int race_err;
	struct ev_timer *grace; /* race head start of the earlier endpoints */
	bool grace_over;
	char race_why[400];
	unsigned wake_gen;
	struct etcd_call *calls;
	struct etcd_stream *streams;
	struct store_stats stats;
	void (*on_timeout)(void *ctx, size_t ep);
	void *on_timeout_ctx;
};

struct etcd_call {
	struct etcd_client *c;
	const char *path;
	struct etcd_buf req;
	enum store_stat_op stat;
	etcd_call_cb cb;
	void *ctx;
	long pinned; /* one attempt on this endpoint, or -1 */
	bool is_auth;
	bool waiting; /* for an endpoint or a token: wake() goes on */
	bool reauthed;
	bool ambiguous;
	bool sent;      /* this attempt went out (counted in the stats) */
	bool hold_open; /* request side open until the reply (etcd_call_open) */
	uint8_t *rbuf;  /* hold_open: the reply so far */
	size_t rlen, rcap;
	unsigned wake_gen;
	struct http_req *http;
	struct ev_timer *timer;
	uint64_t start_ms;
	unsigned attempts, backoff_ms;
	size_t ep;
	int final_err;
	char sent_token[256];
	char tried[256];
	char errmsg[600];
	struct etcd_call *next, *prev;
};

/* What every request to one endpoint carries; points into itself: fill in place. */
struct etcd_req_opts {
	struct http_request_opts o;
	char url[1024];
	char tok[300];
	char sent_token[256];
	const char *hdrs[4];
};

int etcd_client_req_opts(struct etcd_client *c, size_t ep, const char *path, bool with_token,
                         struct etcd_req_opts *r);
int etcd_reply_status(const struct http_response *resp, char *why, size_t whylen);
bool etcd_transport_err(int err);
long etcd_client_pick(struct etcd_client *c);
bool etcd_client_need_token(struct etcd_client *c);
void etcd_client_token_rejected(struct etcd_client *c, const char *sent);
void etcd_call_attempt_failed(struct etcd_call *call, int err, const char *why);
/* Send @call on the endpoint in use, or wait for a token or an endpoint. */
void etcd_call_try(struct etcd_call *call);
/* etcd_endpoint.c: the timers of the background probes and of the race's head start. */
void etcd_ep_reprobe_fire(struct ev_timer *t, void *ctx);
void etcd_race_grace_fire(struct ev_timer *t, void *ctx);
/* Calls and streams waiting for an endpoint or a token go on (@err 0) or count a failure. */
void etcd_client_wake(struct etcd_client *c, int err, const char *why);
/* Mark endpoint @i down: the endpoint in use moves to another that answered. */
void etcd_ep_down(struct etcd_client *c, size_t i, const char *why);
/* etcd_stream.c: wake the streams waiting for an endpoint or a token; free them all. */
void etcd_streams_wake(struct etcd_client *c, int err, const char *why);
void etcd_streams_free(struct etcd_client *c);

#endif
