/*
 * twilld's start-up wiring and event handling: store, network config, backend,
 * lease manager, subnet file, systemd readiness, signals.
 */
#ifndef TWILL_DAEMON_TWILLD_H
#define TWILL_DAEMON_TWILLD_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon/opts.h"

/*
 * Run the daemon until SIGTERM/SIGINT (then 0: the lease and kernel state stay
 * in place). -errno for a fatal start-up error (no usable interface, a bad
 * endpoint list, backend init failure), already logged.
 */
int twilld_run(const struct twilld_opts *o);

#endif
