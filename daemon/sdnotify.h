/* systemd's readiness protocol without libsystemd: one datagram to $NOTIFY_SOCKET. */
#ifndef TWILL_DAEMON_SDNOTIFY_H
#define TWILL_DAEMON_SDNOTIFY_H

/*
 * Send @state (e.g. "READY=1") to $NOTIFY_SOCKET ("/path" or "@abstract").
 * 0 when sent, 0 as well when NOTIFY_SOCKET is unset (not under systemd);
 * -EINVAL for an unusable address, other -errno on failure. Does not log.
 */
int sd_notify_send(const char *state);

#endif
