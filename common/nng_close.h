/* Closing an nng socket within a time bound, for a process that is stopping.
 *
 * On nng 1.5.2 nng_close can wait for ever: its reaper thread can block on a pipe that
 * a close raced with (seen when a node stops while its own admin router's link to it is
 * closing: the reaper, then every later nng_close in the process, waited until SIGKILL).
 * A stopping process must still stop, and save what it saves on the way out, so the
 * close runs on a thread of its own and the caller waits at most the bound. */
#ifndef SYN_COMMON_NNG_CLOSE_H
#define SYN_COMMON_NNG_CLOSE_H

#include <nng/nng.h>
#include <stdbool.h>

/* Closes sock, waiting at most wait_ms. Returns true when the close finished. On false
 * it is still going on a detached thread: nng may still call back into whatever the
 * socket's aios and pipe callbacks use, so the caller must leave that memory alone (the
 * process is about to exit). `what` names the socket in the warning logged then. Once
 * one close has hung, nng's reaper is stuck and later calls return false at once. */
bool syn_nng_close_within(nng_socket sock, unsigned wait_ms, const char *what);

#endif
