/* Cost of the cluster MAC: seal + open (common/cluster_auth.h) of one nng message, by
 * body size, best of five runs. Run by hand: <build>/common/cluster_auth_cost. */
#include <nng/nng.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/cluster_auth.h"
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}
int main(void) {
  char err[256];
  syn_cluster_auth *a =
      syn_cluster_auth_new("0123456789abcdef0123456789abcdef0123", err, sizeof err);
  static unsigned char body[96 * 1024];
  size_t sizes[] = {150, 5 * 1024, 80 * 1024};
  const char *what[] = {"gossip ping (150 B)", "batch of 64 announces (5 KiB)",
                        "batch of 1024 announces (80 KiB)"};
  for (int s = 0; s < 3; s++) {
    int it = sizes[s] < 1000 ? 200000 : sizes[s] < 10000 ? 40000 : 4000;
    nng_msg *m;
    nng_msg_alloc(&m, 0);
    nng_msg_append(m, body, sizes[s]);
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
      double t = now();
      for (int i = 0; i < it; i++) {
        uint8_t tag[32];
        syn_cluster_auth_seal(a, m, SYN_AUTH_BATCH_REQUEST, NULL, tag);
        if (syn_cluster_auth_open(a, m, SYN_AUTH_BATCH_REQUEST, NULL, NULL)) return 1;
      }
      double us = (now() - t) / it * 1e6;
      if (us < best) best = us;
    }
    printf("%-34s seal+open %7.2f us (best of 5)\n", what[s], best);
    nng_msg_free(m);
  }
  syn_cluster_auth_free(a);
}
