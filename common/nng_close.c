#include "common/nng_close.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"

/* Set once a close has hung: nng's reaper is then stuck, every later close would hang
 * too, so they are not tried. */
static atomic_bool close_hung;

/* Shared by the caller and the closer thread; whichever is last frees it. */
typedef struct closing {
  pthread_mutex_t lock;
  pthread_cond_t done_cond;
  nng_socket sock;
  bool done;      /* nng_close returned */
  bool abandoned; /* the caller stopped waiting: the closer frees */
} closing;

static void closing_free(closing *c) {
  pthread_cond_destroy(&c->done_cond);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

static void *closer_main(void *arg) {
  closing *c = arg;
  nng_close(c->sock);
  pthread_mutex_lock(&c->lock);
  c->done = true;
  bool abandoned = c->abandoned;
  pthread_cond_signal(&c->done_cond);
  pthread_mutex_unlock(&c->lock);
  if (abandoned) closing_free(c);
  return NULL;
}

static struct timespec deadline_after(unsigned ms) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  t.tv_sec += ms / 1000;
  t.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (t.tv_nsec >= 1000000000L) {
    t.tv_sec++;
    t.tv_nsec -= 1000000000L;
  }
  return t;
}

bool syn_nng_close_within(nng_socket sock, unsigned wait_ms, const char *what) {
  if (atomic_load(&close_hung)) return false;
  closing *c = calloc(1, sizeof *c);
  pthread_condattr_t attr;
  pthread_t thread;
  if (!c || pthread_condattr_init(&attr)) {
    free(c);
    nng_close(sock); /* nothing to spare: close here, unbounded */
    return true;
  }
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->done_cond, &attr);
  pthread_condattr_destroy(&attr);
  c->sock = sock;
  if (pthread_create(&thread, NULL, closer_main, c)) {
    closing_free(c);
    nng_close(sock);
    return true;
  }
  struct timespec deadline = deadline_after(wait_ms);
  pthread_mutex_lock(&c->lock);
  while (!c->done)
    if (pthread_cond_timedwait(&c->done_cond, &c->lock, &deadline) == ETIMEDOUT) break;
  bool done = c->done;
  if (!done) c->abandoned = true;
  pthread_mutex_unlock(&c->lock);
  if (!done) {
    atomic_store(&close_hung, true);
    pthread_detach(thread);
    syn_warn("%s: closing its nng socket has not finished after %u ms; stopping without it", what,
             wait_ms);
    return false;
  }
  pthread_join(thread, NULL);
  closing_free(c);
  return true;
}
