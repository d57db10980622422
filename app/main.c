/* synapse-tracker: composes the roles.
 *
 * standalone  a node and a router in one process, talking over inproc:// (the same code
 *             path as the cluster, without the network)
 * node        a node serving on --cluster-addr, with an admin HTTP port (--port)
 * router      a stateless front end forwarding to the node at --seeds
 *
 * Prints `ready role=<role> http=<port> udp=<port>` on stdout once every port serves, so
 * scripts and tests wait for that line. SIGINT and SIGTERM stop the process cleanly. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "common/config.h"
#include "common/log.h"
#include "node/node.h"
#include "router/router.h"

#define STANDALONE_NODE_URL "inproc://synapse-node"

typedef struct app {
  uv_loop_t *loop;
  syn_config cfg;
  syn_node *node;
  syn_router *router;
  uv_signal_t sigint, sigterm;
} app;

static void on_signal(uv_signal_t *s, int signum) {
  app *a = s->data;
  syn_info("signal %d: shutting down", signum);
  syn_router_stop(a->router);
  a->router = NULL;
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
}

static int ensure_data_dir(const char *dir, char *err, size_t err_len) {
  if (mkdir(dir, 0755) == 0) return 0;
  struct stat st;
  if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
  snprintf(err, err_len, "--data-dir: cannot create \"%s\"", dir);
  return -1;
}

static int start_roles(app *a, char *err, size_t err_len) {
  const syn_config *cfg = &a->cfg;
  syn_router_options ro = {0};
  switch (cfg->role) {
  case SYN_PROCESS_STANDALONE:
    a->node = syn_node_start(cfg, STANDALONE_NODE_URL, err, err_len);
    ro.node_url = STANDALONE_NODE_URL;
    break;
  case SYN_PROCESS_NODE:
    a->node = syn_node_start(cfg, cfg->cluster_addr, err, err_len);
    ro.node_url = cfg->cluster_addr;
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
  if (rc) {
    fprintf(stderr, "synapse-tracker: %s\n", err);
    syn_config_free(&a.cfg);
    return 2;
  }
  syn_log_threshold = a.cfg.debug ? SYN_LOG_DEBUG : SYN_LOG_INFO;
  signal(SIGPIPE, SIG_IGN);
  a.loop = uv_default_loop();
  if (start_roles(&a, err, sizeof err)) {
    fprintf(stderr, "synapse-tracker: %s\n", err);
    uv_run(a.loop, UV_RUN_NOWAIT);
    syn_node_stop(a.node);
    syn_config_free(&a.cfg);
    return 1;
  }
  uv_signal_init(a.loop, &a.sigint);
  uv_signal_init(a.loop, &a.sigterm);
  a.sigint.data = a.sigterm.data = &a;
  uv_signal_start(&a.sigint, on_signal, SIGINT);
  uv_signal_start(&a.sigterm, on_signal, SIGTERM);
  printf("ready role=%s http=%u udp=%u\n", syn_role_name(a.cfg.role), (unsigned)a.cfg.http_port,
         a.cfg.role == SYN_PROCESS_NODE ? 0u : (unsigned)a.cfg.udp_port);
  fflush(stdout);
  syn_info("serving: role=%s http=%s:%u udp=%u data=%s", syn_role_name(a.cfg.role), a.cfg.host,
           (unsigned)a.cfg.http_port, (unsigned)a.cfg.udp_port, a.cfg.data_dir);
  uv_run(a.loop, UV_RUN_DEFAULT);
  syn_node_stop(a.node);
  uv_loop_close(a.loop);
  syn_config_free(&a.cfg);
  return 0;
}
