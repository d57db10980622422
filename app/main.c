/* synapse-tracker: composes the roles.
 *
 * standalone  a node and a router in one process, talking over inproc:// (the same code
 *             path as the cluster, without the network); announces and scrapes are
 *             served on the router's loop thread (node/node.h syn_node_serve_inline)
 * node        a node serving on --cluster-addr, with an admin HTTP port (--port)
 * router      a stateless front end forwarding to the node at --seeds
 *
 * Prints `ready role=<role> http=<port> udp=<port>` on stdout once every port serves, so
 * scripts and tests wait for that line. SIGINT and SIGTERM stop the process cleanly; SIGHUP
 * re-reads the access lists and token files (the old ones stay when a file is bad). */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <uv.h>

#include "cluster/membership.h"
#include "cluster/view.h"
#include "common/config.h"
#include "common/identity.h"
#include "common/log.h"
#include "node/node.h"
#include "router/router.h"

#define STANDALONE_NODE_URL "inproc://synapse-node"

typedef struct app {
  uv_loop_t *loop;
  syn_config cfg;
  syn_node *node;
  syn_membership *members; /* role node */
  syn_view_source *view;   /* role node: shared by the node and its admin port */
  syn_router *router;
  uv_signal_t sigint, sigterm, sighup;
  uv_async_t stop;      /* a node's leave finished: stop the loop */
  uv_timer_t watch;     /* a refused join stops the process */
  int exit_code;
  pthread_t leaver;
  bool leaving;
  bool members_left; /* no leave thread was started */
} app;

static void stop_serving(app *a) {
  syn_router_stop(a->router);
  a->router = NULL;
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  uv_close((uv_handle_t *)&a->sighup, NULL);
  uv_close((uv_handle_t *)&a->stop, NULL);
  uv_close((uv_handle_t *)&a->watch, NULL);
}

/* The cluster refused our member id: nothing will change that while we run (the error
 * line naming the id and both addresses was logged by the membership). */
static void on_watch(uv_timer_t *t) {
  app *a = t->data;
  char why[640];
  bool refused = a->members ? syn_membership_refused(a->members, why, sizeof why)
                            : a->router && syn_router_refused(a->router, why, sizeof why);
  if (!refused || a->leaving) return;
  a->leaving = true;
  a->members_left = true; /* no graceful leave: we were never admitted */
  a->exit_code = 1;
  stop_serving(a);
}

static void on_left(uv_async_t *h) { stop_serving(h->data); }

/* A node leaves gracefully off the loop thread, so its admin port keeps answering while
 * the others drop it from the ring and pull its partitions. */
static void *leave_main(void *arg) {
  app *a = arg;
  syn_node_hand_off(a->node, a->members);
  uv_async_send(&a->stop);
  return NULL;
}

static void on_signal(uv_signal_t *s, int signum) {
  app *a = s->data;
  if (a->leaving) return;
  syn_info("signal %d: shutting down", signum);
  a->leaving = true;
  if (a->members && pthread_create(&a->leaver, NULL, leave_main, a) == 0) return;
  a->members_left = true;
  stop_serving(a);
}

/* The router reads the files on a worker thread and swaps the result in on the loop. */
static void on_hangup(uv_signal_t *s, int signum) {
  (void)signum;
  app *a = s->data;
  if (!a->router || a->leaving) return;
  syn_info("SIGHUP: reloading the access lists and token files");
  syn_router_reload(a->router);
}

/* Every connection is a descriptor, and the soft limit is often 1024 while the hard one
 * allows far more: take what the hard limit allows, once, at start. */
static void raise_descriptor_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= rl.rlim_max) return;
  rlim_t was = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
    syn_debug("file descriptor limit raised from %llu to %llu", (unsigned long long)was,
              (unsigned long long)rl.rlim_cur);
}

static int ensure_data_dir(const char *dir, char *err, size_t err_len) {
  if (mkdir(dir, 0755) == 0) return 0;
  struct stat st;
  if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
  snprintf(err, err_len, "--data-dir: cannot create \"%s\"", dir);
  return -1;
}

/* A node joins the cluster: it listens for gossip and replication on its peer address
 * and contacts the seeds at theirs (their cluster address's port + 1). */
static syn_membership *join_cluster(const syn_config *cfg, char *err, size_t err_len) {
  static char seed_urls[SYN_MAX_SEEDS][300];
  const char *seeds[SYN_MAX_SEEDS];
  for (size_t i = 0; i < cfg->seed_count; i++) {
    if (syn_peer_url_default(cfg->seeds[i], seed_urls[i], sizeof seed_urls[i])) {
      snprintf(err, err_len, "--seeds: \"%s\" is not a tcp://HOST:PORT URL", cfg->seeds[i]);
      return NULL;
    }
    seeds[i] = seed_urls[i];
  }
  syn_membership_config mc;
  syn_membership_config_defaults(&mc);
  syn_membership_config_apply(&mc, cfg);
  mc.self_id = cfg->node_id;
  mc.role = SYN_ROLE_NODE;
  mc.data_url = cfg->cluster_addr;
  mc.peer_url = cfg->peer_addr;
  mc.seeds = seeds;
  mc.n_seeds = cfg->seed_count;
  return syn_membership_start(&mc, err, err_len);
}

/* Said once the process serves, so that a failed start prints its reason alone. */
static void warn_if_open_cluster(const syn_config *cfg) {
  if (cfg->role == SYN_PROCESS_STANDALONE || (cfg->cluster_key && cfg->cluster_key[0])) return;
  syn_warn("cluster: no cluster key (cluster.key, cluster.key_file or SYNAPSE_CLUSTER_KEY): "
           "the cluster is open, any process that reaches its ports can join it, change "
           "its membership and read or write its data");
}

/* The router's upstream serves swarm-only batches through the node directly. */
static int serve_inline(void *node, const Synapse__Request *req, Synapse__Reply *reply) {
  return syn_node_serve_inline(node, req, reply);
}

static int start_roles(app *a, char *err, size_t err_len) {
  const syn_config *cfg = &a->cfg;
  syn_router_options ro = {0};
  switch (cfg->role) {
  case SYN_PROCESS_STANDALONE:
    a->node = syn_node_start(cfg, STANDALONE_NODE_URL, NULL, NULL, err, err_len);
    ro.node_url = STANDALONE_NODE_URL;
    ro.node_serve_inline = serve_inline;
    ro.node_inline_ctx = a->node;
    break;
  case SYN_PROCESS_NODE:
    a->members = join_cluster(cfg, err, err_len);
    if (!a->members) return -1;
    a->view = syn_view_source_new(a->members, cfg->partitions, cfg->replication);
    if (!a->view) {
      snprintf(err, err_len, "out of memory");
      return -1;
    }
    a->node = syn_node_start(cfg, cfg->cluster_addr, a->members, a->view, err, err_len);
    ro.view = a->view;
    ro.admin_only = true;
    break;
  case SYN_PROCESS_ROUTER:
    break; /* joins the cluster through cfg->seeds */
  }
  if (cfg->role != SYN_PROCESS_ROUTER && !a->node) return -1;
  a->router = syn_router_start(a->loop, cfg, &ro, err, err_len);
  return a->router ? 0 : -1;
}

int main(int argc, char **argv) {
  static app a;
  char err[512] = "";
  syn_config_defaults(&a.cfg);
  int rc = syn_config_parse_args(&a.cfg, argc, argv, err, sizeof err);
  if (rc == 0) rc = syn_config_validate(&a.cfg, err, sizeof err);
  if (rc == 1) {
    syn_config_free(&a.cfg);
    return 0;
  }
  if (rc == 0) rc = ensure_data_dir(a.cfg.data_dir, err, sizeof err);
  bool new_id = false;
  if (rc == 0) rc = syn_identity_resolve(&a.cfg, &new_id, err, sizeof err);
  if (rc) {
    fprintf(stderr, "synapse-tracker: %s\n", err);
    syn_config_free(&a.cfg);
    return 2;
  }
  syn_log_threshold = a.cfg.debug ? SYN_LOG_DEBUG : SYN_LOG_INFO;
  syn_log_format = strcmp(a.cfg.log_format, "json") == 0 ? SYN_LOG_JSON : SYN_LOG_TEXT;

  signal(SIGPIPE, SIG_IGN);
  raise_descriptor_limit();
  a.loop = uv_default_loop();
  if (start_roles(&a, err, sizeof err)) {
    fprintf(stderr, "synapse-tracker: %s\n", err);
    uv_run(a.loop, UV_RUN_NOWAIT);
    syn_node_abandon(a.node);
    syn_view_source_free(a.view);
    if (a.members) syn_membership_stop(a.members);
    syn_config_free(&a.cfg);
    return 1;
  }
  uv_signal_init(a.loop, &a.sigint);
  uv_signal_init(a.loop, &a.sigterm);
  uv_signal_init(a.loop, &a.sighup);
  uv_async_init(a.loop, &a.stop, on_left);
  uv_timer_init(a.loop, &a.watch);
  a.sigint.data = a.sigterm.data = a.sighup.data = a.stop.data = a.watch.data = &a;
  uv_timer_start(&a.watch, on_watch, 200, 200);
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  uv_signal_start(&a.sighup, on_hangup, SIGHUP);
  printf("ready role=%s http=%u udp=%u\n", syn_role_name(a.cfg.role), (unsigned)a.cfg.http_port,
         a.cfg.role == SYN_PROCESS_NODE ? 0u : (unsigned)a.cfg.udp_port);
  fflush(stdout);
  syn_info("serving: role=%s http=%s:%u udp=%u data=%s", syn_role_name(a.cfg.role), a.cfg.host,
           (unsigned)a.cfg.http_port, (unsigned)a.cfg.udp_port, a.cfg.data_dir);
  warn_if_open_cluster(&a.cfg);
  if (a.cfg.role != SYN_PROCESS_STANDALONE)
    syn_info("member id %s%s, peer address %s", a.cfg.node_id,
             new_id ? " (new: kept in the data directory)" : "", a.cfg.peer_addr);
  uv_run(a.loop, UV_RUN_DEFAULT);
  if (a.leaving && a.members && !a.members_left) pthread_join(a.leaver, NULL);
  syn_node_stop(a.node);
  syn_view_source_free(a.view);
  if (a.members) syn_membership_stop(a.members);
  uv_loop_close(a.loop);
  syn_config_free(&a.cfg);
  return a.exit_code;
}
