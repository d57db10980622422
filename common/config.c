/* Configuration: defaults, then config.yaml, then the command line.
 *
 * Design note. Every YAML key is one row of the `keys` table (section, name, kind, field
 * offset), and the command-line flags that mirror a key reuse that row, so a value is
 * parsed and checked by the same code whichever source it comes from. Parsing a single
 * value only checks its syntax (is it a number, a port, a CIDR); the cross-field and
 * range rules (numwant bounds, interval order) live in syn_config_validate, which runs
 * once after every source has been applied.
 *
 * Errors are one line: "<file>: <section>.<key>: <problem>" for the YAML file and
 * "--<flag>: <problem>" for the command line; the problem text is shared by both.
 *
 * Runs once at start on the main thread. getopt_long keeps global state, which is why
 * parse_args resets optind before each pass and is not thread-safe. */
#include "common/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "common/cluster_auth.h"

#define SYN_VERSION_TEXT "synapse-tracker 0.1.0"
#define PROBLEM_LEN 256

static void set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_len, const char *fmt, ...) {
  if (err == NULL || err_len == 0) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, err_len, fmt, ap);
  va_end(ap);
}

/* Replaces an owned string. On ENOMEM the old value is kept, so cfg stays freeable. */
static int replace_str(char **slot, const char *value) {
  char *copy = strdup(value);
  if (copy == NULL) return -1;
  free(*slot);
  *slot = copy;
  return 0;
}

/* ---- Defaults ---------------------------------------------------------------------- */

/* Peers re-announce every interval; two missed announces plus slack for slow clients. */
static uint32_t derived_peer_timeout(uint32_t announce_interval) {
  uint64_t t = 2 * (uint64_t)announce_interval + 300;
  return t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
}

static void set_default_strings(syn_config *cfg) {
  /* All interfaces, IPv4 and IPv6 (one dual-stack socket): a tracker is a public service,
   * containers need it, and IPv6 clients are why BEP 7 exists. */
  cfg->host = strdup("::");
  /* Empty: a node keeps the id it generated on its first start in its data directory
   * (stable across restarts, unique across hosts: design decision 1); a router, which
   * owns nothing, takes a fresh random one. See syn_config_resolve_identity. */
  cfg->node_id = strdup("");
  /* Loopback: a standalone process needs no reachable cluster address. */
  cfg->cluster_addr = strdup("tcp://127.0.0.1:7000");
  /* Empty: the cluster port + 1, the convention seeds are reached by. */
  cfg->peer_addr = strdup("");
  /* Relative to the working directory, like the seed's ./tracker.db. */
  cfg->data_dir = strdup("./data");
  /* Empty = random key: correct for one router; a cluster must share a secret. */
  cfg->udp_secret = strdup("");
  /* Empty: no file; the key then comes from udp_secret, SYNAPSE_UDP_SECRET, or the one
   * generated once into the data directory (common/connid.h). */
  cfg->udp_secret_file = strdup("");
  /* Plain lines for a terminal; json for a log collector (common/log.h). */
  cfg->log_format = strdup("text");
  /* No cluster key: an open cluster, as on a laptop; router and node roles warn. */
  cfg->cluster_key = strdup("");
  cfg->cluster_key_file = strdup("");
  cfg->ws_cert_file = strdup("");
  cfg->ws_key_file = strdup("");
  /* No token files and no access lists: a laptop's tracker is open; a public one names
   * its files (a Kubernetes Secret or ConfigMap mounted as files). */
  cfg->api_tokens_file = strdup("");
  cfg->api_admin_tokens_file = strdup("");
  for (int i = 0; i < 4; i++) cfg->access_files[i] = strdup("");
  /* No embedding service: text search is keyword search until one is configured. */
  cfg->embedding_url = strdup("");
  cfg->embedding_api = strdup("ollama"); /* the common local setup */
  cfg->embedding_model = strdup("nomic-embed-text");
  /* nomic's models are trained with task prefixes; queries use this one. */
  cfg->embedding_query_prefix = strdup("search_query: ");
  /* auto: exact while small, approximate once exact search would cost milliseconds. */
  cfg->index_type = strdup("auto");
  /* Text search reaches meaning without an embedding service: near the embeddings of the
   * best keyword hits. Three hits: enough that one odd hit does not steer the vector,
   * few enough that they stay on the query's topic (and one more fan-out is cheap). */
  cfg->search_feedback = true;
  cfg->feedback_docs = 3;
}

static void set_default_server(syn_config *cfg) {
  cfg->announce_interval = 1800;    /* 30 min, as the seed and most public trackers */
  cfg->min_interval = 900;          /* half the interval: lets clients retry, caps abuse */
  cfg->interval_jitter_percent = 5; /* 30 min +- 90 s: after a restart the re-announces
                                       spread out over three minutes instead of one burst */
  cfg->peer_timeout = derived_peer_timeout(cfg->announce_interval);
  cfg->peer_timeout_explicit = false;
  cfg->default_numwant = 50;       /* BEP 3's customary 50; what clients expect */
  cfg->max_numwant = 200;          /* more peers rarely help a client, and cost bandwidth */
  cfg->full_scrape = false;        /* a full scrape is expensive and leaks the torrent list */
  cfg->full_scrape_interval = 600; /* one per client IP per 10 min when enabled */
  cfg->full_scrape_max = 10000;    /* bounds one reply to about a megabyte */
  cfg->trusted_proxy_count = 0;    /* trust no X-Forwarded-For until told: it is spoofable */
  cfg->request_timeout_ms = 2000;  /* below clients' own timeouts (libtorrent waits 20 s+) */
  cfg->public_url_count = 0;       /* magnet links then use the request's Host header */
}

static void set_default_limits(syn_config *cfg) {
  cfg->max_request_line = 8192;      /* an announce with a long key fits; slowloris does not */
  cfg->max_header_bytes = 16384;     /* twice the request line, as nginx's defaults */
  cfg->max_headers = 64;             /* clients send about 10; 64 leaves room for proxies */
  cfg->max_body = 1048576;           /* 1 MiB: a 4096-float embedding in JSON is ~80 KiB */
  cfg->max_batch_body = 16777216;    /* 16 MiB: 1,000 shards of 768 floats in JSON are ~9 MiB;
                                        the router holds the body while it parses it */
  cfg->max_connections = 10000;      /* fits the default fd limit raised once; bounds memory */
  cfg->idle_timeout_ms = 60000;      /* keep-alive helps agents; idle sockets cost memory */
  cfg->header_timeout_ms = 10000;    /* a slow link sends a head in well under a second;
                                        slowloris trickles it for ever */
  cfg->linger_ms = 5000;             /* lets a client finish sending, so it reads the 413 */
  cfg->max_connections_per_ip = 128; /* browsers open 6 per host; room for a NAT's users */
  cfg->rate_limit = true;            /* one client must not take the tracker off the air */
  /* Per client, a small share of what one router serves (~50k requests/s): announces, a
   * seedbox starting up (2000 at once) and a NAT's worth of clients; scrapes are rarer;
   * searches cost a fan-out to every node; an agent bulk-loading its shards registers
   * about as fast as a node can commit. */
  static const uint32_t per_s[4] = {200, 50, 100, 200}, burst[4] = {2000, 500, 1000, 2000};
  memcpy(cfg->rate_per_s, per_s, sizeof per_s);
  memcpy(cfg->rate_burst, burst, sizeof burst);
  cfg->rate_table_entries = 65536; /* 2 MiB; beyond, the least recently seen is forgotten */
}

void syn_config_defaults(syn_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->http_port = 6881;              /* the seed's port; BitTorrent's traditional range */
  cfg->udp_port = 6969;               /* the de facto UDP tracker port (BEP 15 examples) */
  cfg->ws_port = 6882;    /* beside the HTTP port, so WebTorrent works with no configuration */
  cfg->wss_port = 0;      /* TLS needs a certificate: off until one is configured */
  cfg->ws_max_message = 64 * 1024; /* five SDP offers are 5-15 KB; room, and a bound */
  cfg->ws_max_offers = 10; /* WebTorrent sends at most 5; a client sending hundreds floods */
  cfg->ws_max_connections_per_ip = 32; /* one socket per tracker per browser; room for NAT */
  cfg->ws_max_swarms_per_socket = 64;  /* a WebTorrent client seeding many torrents */
  cfg->ws_interval = 120; /* bittorrent-tracker's own server tells 2 minutes */
  cfg->role = SYN_PROCESS_STANDALONE; /* one process on a laptop needs no cluster */
  cfg->seed_count = 0;                /* standalone talks to itself over inproc:// */
  cfg->debug = false;                 /* info level: per-request logging would cost throughput */
  set_default_strings(cfg);
  set_default_server(cfg);
  set_default_limits(cfg);
  cfg->node_workers = 2;             /* one announce-heavy and one search-heavy in flight */
  cfg->swarm_snapshot = true;        /* a restart should not empty every swarm */
  cfg->swarm_snapshot_max_mb = 2048; /* about 55 M IPv4 peers (36 bytes each): refuses a
                                        runaway file, never a real store */
  cfg->embedding_timeout_ms = 2000;  /* a slow embedder must not hold a search for longer */
  cfg->partitions = 1024;            /* many fixed partitions: balance by hashing, not by luck */
  cfg->replication = 3;              /* survives one node loss with a quorum left (W = 2) */
  cfg->write_quorum = 2;             /* an acked registration exists on two nodes */
  /* Detection within about three seconds (design brief); cluster/swim.c has the reasons. */
  cfg->probe_interval_ms = 400;
  cfg->probe_timeout_ms = 200;
  cfg->suspicion_mult = 3;
  cfg->suspicion_max_mult = 4;
  cfg->reap_timeout_s = 600;          /* a restarting pod keeps its partitions for 10 minutes */
  cfg->replication_interval_ms = 100; /* a lost update costs at most this much + an interval */
  cfg->replication_idle_s = 60;       /* pushers follow the current replica sets */
  /* 7 days: a node away longer than this discards its data and pulls it again, so a
   * delete only has to be remembered this long to never come back. */
  cfg->tombstone_grace_s = 7 * 86400;
  /* 10 s: differences left by a missed write are repaired within seconds; a round where
   * nothing differs costs one 8 KiB digest exchange per pair of nodes. */
  cfg->anti_entropy_interval_ms = 10000;
}

void syn_config_free(syn_config *cfg) {
  free(cfg->host);
  free(cfg->node_id);
  free(cfg->cluster_addr);
  free(cfg->peer_addr);
  free(cfg->data_dir);
  free(cfg->udp_secret);
  free(cfg->udp_secret_file);
  free(cfg->log_format);
  if (cfg->cluster_key) explicit_bzero(cfg->cluster_key, strlen(cfg->cluster_key));
  free(cfg->cluster_key);
  free(cfg->cluster_key_file);
  free(cfg->ws_cert_file);
  free(cfg->ws_key_file);
  for (size_t i = 0; i < cfg->seed_count; i++) free(cfg->seeds[i]);
  for (size_t i = 0; i < cfg->public_url_count; i++) free(cfg->public_urls[i]);
  for (size_t i = 0; i < cfg->api_token_count; i++) free(cfg->api_tokens[i]);
  for (size_t i = 0; i < cfg->api_admin_token_count; i++) free(cfg->api_admin_tokens[i]);
  free(cfg->api_tokens_file);
  free(cfg->api_admin_tokens_file);
  for (int i = 0; i < 4; i++) free(cfg->access_files[i]);
  free(cfg->embedding_url);
  free(cfg->embedding_api);
  free(cfg->embedding_model);
  free(cfg->embedding_query_prefix);
  free(cfg->index_type);
  memset(cfg, 0, sizeof *cfg);
}

const char *syn_role_name(syn_role role) {
  switch (role) {
  case SYN_PROCESS_STANDALONE: return "standalone";
  case SYN_PROCESS_NODE: return "node";
  case SYN_PROCESS_ROUTER: return "router";
  }
  return "unknown";
}

/* ---- CIDR -------------------------------------------------------------------------- */

static void map_ipv4(const uint8_t v4[4], uint8_t out[16]) {
  memset(out, 0, 10);
  out[10] = 0xff;
  out[11] = 0xff;
  memcpy(out + 12, v4, 4);
}

/* Clears the host bits, so "10.1.2.3/8" is stored as the network 10.0.0.0/8. */
static void mask_host_bits(uint8_t addr[16], unsigned prefix) {
  for (unsigned i = 0; i < 16; i++) {
    unsigned bits = prefix > i * 8 ? prefix - i * 8 : 0;
    if (bits < 8) addr[i] &= (uint8_t)(0xff00u >> bits);
  }
}

/* Digits only (no sign, no spaces), at most 3 of them, value <= max. */
static int parse_prefix(const char *text, unsigned max, unsigned *out) {
  size_t n = strlen(text);
  if (n == 0 || n > 3 || strspn(text, "0123456789") != n) return -1;
  unsigned v = (unsigned)atoi(text);
  if (v > max) return -1;
  *out = v;
  return 0;
}

uint32_t syn_config_told_interval(const syn_config *cfg, uint32_t r) {
  uint32_t base = cfg->announce_interval;
  uint32_t spread = (uint32_t)((uint64_t)base * cfg->interval_jitter_percent / 100);
  if (spread == 0) return base;
  uint32_t told = base - spread + r % (2 * spread + 1);
  /* Never below min interval: a client told less would be answered early on schedule. */
  return told < cfg->min_interval ? cfg->min_interval : told;
}

const char *syn_host_ipv4_fallback(const char *host) {
  return strcmp(host, "::") == 0 ? "0.0.0.0" : NULL;
}

int syn_cidr_parse(const char *text, syn_cidr *out) {
  char addr_text[INET6_ADDRSTRLEN + 8];
  size_t n = strcspn(text, "/");
  if (n == 0 || n >= sizeof addr_text) return -1;
  memcpy(addr_text, text, n);
  addr_text[n] = '\0';

  uint8_t raw[16];
  unsigned prefix, offset;
  if (inet_pton(AF_INET, addr_text, raw) == 1) {
    map_ipv4(raw, out->addr);
    offset = 96; /* the ::ffff:0:0/96 part of the mapped form */
  } else if (inet_pton(AF_INET6, addr_text, out->addr) == 1) {
    offset = 0;
  } else {
    return -1;
  }
  if (text[n] == '\0') {
    prefix = 128 - offset; /* a bare address is a single host */
  } else if (parse_prefix(text + n + 1, 128 - offset, &prefix) != 0) {
    return -1;
  }
  out->prefix = (uint8_t)(prefix + offset);
  mask_host_bits(out->addr, out->prefix);
  return 0;
}

bool syn_cidr_contains(const syn_cidr *cidr, const uint8_t *ip, size_t ip_len) {
  uint8_t addr[16];
  if (ip_len == 4) {
    map_ipv4(ip, addr);
  } else if (ip_len == 16) {
    memcpy(addr, ip, 16);
  } else {
    return false;
  }
  mask_host_bits(addr, cidr->prefix);
  return memcmp(addr, cidr->addr, 16) == 0;
}

/* ---- Single values ----------------------------------------------------------------- */
/* Each parser writes the problem (without the key or flag name) into prob. */

static int parse_u32(const char *text, uint32_t *out, char *prob, size_t prob_len) {
  size_t n = strlen(text);
  /* strtoul would accept "-1", " 5" and "0x10"; config values are plain decimals. */
  if (n == 0 || strspn(text, "0123456789") != n) {
    set_err(prob, prob_len, "\"%s\" is not a number", text);
    return -1;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    v = v * 10 + (uint64_t)(text[i] - '0');
    if (v > UINT32_MAX) {
      set_err(prob, prob_len, "\"%s\" is out of range (0-%u)", text, UINT32_MAX);
      return -1;
    }
  }
  *out = (uint32_t)v;
  return 0;
}

static int parse_port(const char *text, bool allow_zero, uint16_t *out, char *prob,
                      size_t prob_len) {
  uint32_t v;
  char ignored[8];
  unsigned lo = allow_zero ? 0 : 1;
  if (parse_u32(text, &v, ignored, sizeof ignored) != 0 || v < lo || v > 65535) {
    set_err(prob, prob_len, "\"%s\" is not a port number (%u-65535)", text, lo);
    return -1;
  }
  *out = (uint16_t)v;
  return 0;
}

static int parse_bool(const char *text, bool *out, char *prob, size_t prob_len) {
  /* YAML 1.1 spellings, which libyaml leaves to the application. */
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
    if (strcasecmp(text, yes[i]) == 0 || strcasecmp(text, no[i]) == 0) {
      *out = strcasecmp(text, yes[i]) == 0;
      return 0;
    }
  }
  set_err(prob, prob_len, "\"%s\" is not a boolean (true or false)", text);
  return -1;
}

static int parse_role(const char *text, syn_role *out, char *prob, size_t prob_len) {
  for (int r = SYN_PROCESS_STANDALONE; r <= SYN_PROCESS_ROUTER; r++) {
    if (strcmp(text, syn_role_name((syn_role)r)) != 0) continue;
    *out = (syn_role)r;
    return 0;
  }
  set_err(prob, prob_len, "\"%s\" is not one of standalone, node, router", text);
  return -1;
}

/* ---- The key table ----------------------------------------------------------------- */

typedef enum key_kind {
  KIND_STR,
  KIND_PORT,         /* 1..65535 */
  KIND_PORT_OR_ZERO, /* 0 disables the listener */
  KIND_U32,
  KIND_BOOL,
  KIND_ROLE,
  KIND_STR_LIST,  /* char *[max] + size_t count */
  KIND_CIDR_LIST, /* syn_cidr[max] + size_t count */
  KIND_IGNORED,   /* accepted and not used yet */
} key_kind;

typedef struct key_spec {
  const char *section;
  const char *name;
  key_kind kind;
  size_t off;       /* the field in syn_config */
  size_t count_off; /* list kinds: the count field */
  size_t max;       /* list kinds: capacity of the array */
} key_spec;

#define FIELD(f) offsetof(syn_config, f)
#define LIST(f, n, max) FIELD(f), FIELD(n), max

static const key_spec keys[] = {
    {"tracker", "host", KIND_STR, FIELD(host), 0, 0},
    {"tracker", "http_port", KIND_PORT, FIELD(http_port), 0, 0},
    {"tracker", "udp_port", KIND_PORT_OR_ZERO, FIELD(udp_port), 0, 0},
    {"tracker", "role", KIND_ROLE, FIELD(role), 0, 0},
    {"tracker", "node_id", KIND_STR, FIELD(node_id), 0, 0},
    {"tracker", "cluster_addr", KIND_STR, FIELD(cluster_addr), 0, 0},
    {"cluster", "peer_addr", KIND_STR, FIELD(peer_addr), 0, 0},
    {"tracker", "seeds", KIND_STR_LIST, LIST(seeds, seed_count, SYN_MAX_SEEDS)},
    {"tracker", "data_dir", KIND_STR, FIELD(data_dir), 0, 0},
    {"tracker", "debug", KIND_BOOL, FIELD(debug), 0, 0},
    {"server", "announce_interval", KIND_U32, FIELD(announce_interval), 0, 0},
    {"server", "min_interval", KIND_U32, FIELD(min_interval), 0, 0},
    {"server", "peer_timeout", KIND_U32, FIELD(peer_timeout), 0, 0},
    {"server", "default_numwant", KIND_U32, FIELD(default_numwant), 0, 0},
    {"server", "max_peers_returned", KIND_U32, FIELD(max_numwant), 0, 0},
    {"server", "full_scrape", KIND_BOOL, FIELD(full_scrape), 0, 0},
    {"server", "full_scrape_interval", KIND_U32, FIELD(full_scrape_interval), 0, 0},
    {"server", "full_scrape_max", KIND_U32, FIELD(full_scrape_max), 0, 0},
    {"server", "trusted_proxies", KIND_CIDR_LIST,
     LIST(trusted_proxies, trusted_proxy_count, SYN_MAX_TRUSTED_PROXIES)},
    {"server", "udp_secret", KIND_STR, FIELD(udp_secret), 0, 0},
    {"server", "udp_secret_file", KIND_STR, FIELD(udp_secret_file), 0, 0},
    {"server", "interval_jitter_percent", KIND_U32, FIELD(interval_jitter_percent), 0, 0},
    {"tracker", "log_format", KIND_STR, FIELD(log_format), 0, 0},
    {"server", "request_timeout_ms", KIND_U32, FIELD(request_timeout_ms), 0, 0},
    {"server", "public_announce_urls", KIND_STR_LIST,
     LIST(public_urls, public_url_count, SYN_MAX_PUBLIC_URLS)},
    {"limits", "max_request_line", KIND_U32, FIELD(max_request_line), 0, 0},
    {"limits", "max_header_bytes", KIND_U32, FIELD(max_header_bytes), 0, 0},
    {"limits", "max_headers", KIND_U32, FIELD(max_headers), 0, 0},
    {"limits", "max_body", KIND_U32, FIELD(max_body), 0, 0},
    {"limits", "max_batch_body", KIND_U32, FIELD(max_batch_body), 0, 0},
    {"limits", "max_connections", KIND_U32, FIELD(max_connections), 0, 0},
    {"limits", "idle_timeout_ms", KIND_U32, FIELD(idle_timeout_ms), 0, 0},
    {"limits", "header_timeout_ms", KIND_U32, FIELD(header_timeout_ms), 0, 0},
    {"limits", "linger_ms", KIND_U32, FIELD(linger_ms), 0, 0},
    {"limits", "max_connections_per_ip", KIND_U32, FIELD(max_connections_per_ip), 0, 0},
    {"limits", "rate_limit", KIND_BOOL, FIELD(rate_limit), 0, 0},
    {"limits", "announce_rate", KIND_U32, FIELD(rate_per_s[0]), 0, 0},
    {"limits", "announce_burst", KIND_U32, FIELD(rate_burst[0]), 0, 0},
    {"limits", "scrape_rate", KIND_U32, FIELD(rate_per_s[1]), 0, 0},
    {"limits", "scrape_burst", KIND_U32, FIELD(rate_burst[1]), 0, 0},
    {"limits", "api_read_rate", KIND_U32, FIELD(rate_per_s[2]), 0, 0},
    {"limits", "api_read_burst", KIND_U32, FIELD(rate_burst[2]), 0, 0},
    {"limits", "api_write_rate", KIND_U32, FIELD(rate_per_s[3]), 0, 0},
    {"limits", "api_write_burst", KIND_U32, FIELD(rate_burst[3]), 0, 0},
    {"limits", "rate_table_entries", KIND_U32, FIELD(rate_table_entries), 0, 0},
    {"websocket", "port", KIND_PORT_OR_ZERO, FIELD(ws_port), 0, 0},
    {"websocket", "tls_port", KIND_PORT_OR_ZERO, FIELD(wss_port), 0, 0},
    {"websocket", "cert_file", KIND_STR, FIELD(ws_cert_file), 0, 0},
    {"websocket", "key_file", KIND_STR, FIELD(ws_key_file), 0, 0},
    {"websocket", "max_message_bytes", KIND_U32, FIELD(ws_max_message), 0, 0},
    {"websocket", "max_offers", KIND_U32, FIELD(ws_max_offers), 0, 0},
    {"websocket", "max_connections_per_ip", KIND_U32, FIELD(ws_max_connections_per_ip), 0, 0},
    {"websocket", "max_swarms_per_socket", KIND_U32, FIELD(ws_max_swarms_per_socket), 0, 0},
    {"websocket", "interval", KIND_U32, FIELD(ws_interval), 0, 0},
    {"node", "workers", KIND_U32, FIELD(node_workers), 0, 0},
    {"node", "swarm_snapshot", KIND_BOOL, FIELD(swarm_snapshot), 0, 0},
    {"node", "swarm_snapshot_max_mb", KIND_U32, FIELD(swarm_snapshot_max_mb), 0, 0},
    /* Kept simple: the SQLite file and snapshots all live in data_dir. */
    {"database", "path", KIND_STR, FIELD(data_dir), 0, 0},
    {"cluster", "partitions", KIND_U32, FIELD(partitions), 0, 0},
    {"cluster", "replication", KIND_U32, FIELD(replication), 0, 0},
    {"cluster", "write_quorum", KIND_U32, FIELD(write_quorum), 0, 0},
    {"cluster", "probe_interval_ms", KIND_U32, FIELD(probe_interval_ms), 0, 0},
    {"cluster", "probe_timeout_ms", KIND_U32, FIELD(probe_timeout_ms), 0, 0},
    {"cluster", "suspicion_mult", KIND_U32, FIELD(suspicion_mult), 0, 0},
    {"cluster", "suspicion_max_mult", KIND_U32, FIELD(suspicion_max_mult), 0, 0},
    {"cluster", "reap_timeout_s", KIND_U32, FIELD(reap_timeout_s), 0, 0},
    {"cluster", "replication_interval_ms", KIND_U32, FIELD(replication_interval_ms), 0, 0},
    {"cluster", "replication_idle_s", KIND_U32, FIELD(replication_idle_s), 0, 0},
    {"cluster", "tombstone_grace_s", KIND_U32, FIELD(tombstone_grace_s), 0, 0},
    {"cluster", "anti_entropy_interval_ms", KIND_U32, FIELD(anti_entropy_interval_ms), 0, 0},
    {"cluster", "key", KIND_STR, FIELD(cluster_key), 0, 0},
    {"cluster", "key_file", KIND_STR, FIELD(cluster_key_file), 0, 0},
    {"api", "tokens", KIND_STR_LIST, LIST(api_tokens, api_token_count, SYN_MAX_API_TOKENS)},
    {"api", "tokens_file", KIND_STR, FIELD(api_tokens_file), 0, 0},
    {"api", "admin_tokens", KIND_STR_LIST,
     LIST(api_admin_tokens, api_admin_token_count, SYN_MAX_API_TOKENS)},
    {"api", "admin_tokens_file", KIND_STR, FIELD(api_admin_tokens_file), 0, 0},
    {"access", "info_hash_allow_file", KIND_STR, FIELD(access_files[0]), 0, 0},
    {"access", "info_hash_deny_file", KIND_STR, FIELD(access_files[1]), 0, 0},
    {"access", "ip_allow_file", KIND_STR, FIELD(access_files[2]), 0, 0},
    {"access", "ip_deny_file", KIND_STR, FIELD(access_files[3]), 0, 0},
    {"tracker", "registered_only", KIND_BOOL, FIELD(registered_only), 0, 0},
    {"embedding", "url", KIND_STR, FIELD(embedding_url), 0, 0},
    {"embedding", "api", KIND_STR, FIELD(embedding_api), 0, 0},
    {"embedding", "model", KIND_STR, FIELD(embedding_model), 0, 0},
    {"embedding", "query_prefix", KIND_STR, FIELD(embedding_query_prefix), 0, 0},
    {"embedding", "timeout_ms", KIND_U32, FIELD(embedding_timeout_ms), 0, 0},
    {"vector_search", "index_type", KIND_STR, FIELD(index_type), 0, 0},
    {"vector_search", "auto_threshold", KIND_U32, FIELD(auto_threshold), 0, 0},
    {"vector_search", "hnsw_m", KIND_U32, FIELD(hnsw_m), 0, 0},
    {"vector_search", "hnsw_ef_construction", KIND_U32, FIELD(hnsw_ef_construction), 0, 0},
    {"vector_search", "hnsw_ef_search", KIND_U32, FIELD(hnsw_ef_search), 0, 0},
    {"vector_search", "ivf_nlist", KIND_U32, FIELD(ivf_nlist), 0, 0},
    {"vector_search", "ivf_nprobe", KIND_U32, FIELD(ivf_nprobe), 0, 0},
    {"vector_search", "feedback", KIND_BOOL, FIELD(search_feedback), 0, 0},
    {"vector_search", "feedback_docs", KIND_U32, FIELD(feedback_docs), 0, 0},
    /* The seed's keys: every shard carries its own dimension, and similarity is cosine. */
    {"vector_search", "dimension", KIND_IGNORED, 0, 0, 0},
    {"vector_search", "similarity_metric", KIND_IGNORED, 0, 0, 0},
};

#define KEY_COUNT (sizeof keys / sizeof keys[0])

static const key_spec *find_key(const char *section, const char *name) {
  for (size_t i = 0; i < KEY_COUNT; i++) {
    if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0) return &keys[i];
  }
  return NULL;
}

static bool known_section(const char *section) {
  for (size_t i = 0; i < KEY_COUNT; i++) {
    if (strcmp(keys[i].section, section) == 0) return true;
  }
  return false;
}

static void *field_ptr(syn_config *cfg, size_t off) { return (char *)cfg + off; }

static void list_clear(syn_config *cfg, const key_spec *k) {
  size_t *count = field_ptr(cfg, k->count_off);
  if (k->kind == KIND_STR_LIST) {
    char **items = field_ptr(cfg, k->off);
    for (size_t i = 0; i < *count; i++) free(items[i]);
  }
  *count = 0;
}

static int list_append(syn_config *cfg, const key_spec *k, const char *text, char *prob,
                       size_t prob_len) {
  size_t *count = field_ptr(cfg, k->count_off);
  if (*count >= k->max) {
    set_err(prob, prob_len, "more than %zu entries", k->max);
    return -1;
  }
  if (k->kind == KIND_CIDR_LIST) {
    syn_cidr *items = field_ptr(cfg, k->off);
    if (syn_cidr_parse(text, &items[*count]) != 0) {
      set_err(prob, prob_len, "\"%s\" is not an address or CIDR (10.0.0.0/8, fd00::/8)", text);
      return -1;
    }
  } else {
    char **items = field_ptr(cfg, k->off);
    if (text[0] == '\0') {
      set_err(prob, prob_len, "empty entry");
      return -1;
    }
    if ((items[*count] = strdup(text)) == NULL) {
      set_err(prob, prob_len, "out of memory");
      return -1;
    }
  }
  (*count)++;
  return 0;
}

/* Applies one scalar to a non-list key; the problem, if any, goes to prob. */
static int apply_scalar(syn_config *cfg, const key_spec *k, const char *text, char *prob,
                        size_t prob_len) {
  void *f = field_ptr(cfg, k->off);
  switch (k->kind) {
  case KIND_STR:
    if (replace_str(f, text) == 0) return 0;
    set_err(prob, prob_len, "out of memory");
    return -1;
  case KIND_PORT: return parse_port(text, false, f, prob, prob_len);
  case KIND_PORT_OR_ZERO: return parse_port(text, true, f, prob, prob_len);
  case KIND_U32: return parse_u32(text, f, prob, prob_len);
  case KIND_BOOL: return parse_bool(text, f, prob, prob_len);
  case KIND_ROLE: return parse_role(text, f, prob, prob_len);
  case KIND_IGNORED: return 0;
  case KIND_STR_LIST:
  case KIND_CIDR_LIST: break;
  }
  set_err(prob, prob_len, "expects a list");
  return -1;
}

static bool is_list(const key_spec *k) {
  return k->kind == KIND_STR_LIST || k->kind == KIND_CIDR_LIST;
}

/* ---- YAML -------------------------------------------------------------------------- */

/* One load: the document, where errors go, and which keys were already set (a key given
 * twice is almost always a paste mistake, and libyaml does not catch it). */
typedef struct yaml_load {
  syn_config *cfg;
  yaml_document_t *doc;
  const char *path;
  char *err;
  size_t err_len;
  bool key_seen[KEY_COUNT];
} yaml_load;

/* A scalar's text, or NULL when the node is not a scalar. libyaml NUL-terminates it;
 * an embedded NUL ("\0" escape) would silently cut the value, so it is refused. */
static const char *scalar_text(const yaml_node_t *node) {
  if (node == NULL || node->type != YAML_SCALAR_NODE) return NULL;
  const char *text = (const char *)node->data.scalar.value;
  return strlen(text) == node->data.scalar.length ? text : NULL;
}

/* A plain `key:` with nothing after it, or `~` / `null`. */
static bool is_null(const yaml_node_t *node) {
  if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return false;
  const char *t = (const char *)node->data.scalar.value;
  return t[0] == '\0' || strcmp(t, "~") == 0 || strcasecmp(t, "null") == 0;
}

static int key_error(yaml_load *ld, const key_spec *k, const char *prob) {
  set_err(ld->err, ld->err_len, "%s: %s.%s: %s", ld->path, k->section, k->name, prob);
  return -1;
}

/* A list key takes a sequence of scalars, one scalar (a list of one) or nothing. */
static int load_list(yaml_load *ld, const key_spec *k, yaml_node_t *value) {
  char prob[PROBLEM_LEN];
  list_clear(ld->cfg, k); /* the file replaces the default list, it does not extend it */
  if (is_null(value)) return 0;
  if (value->type == YAML_SCALAR_NODE) {
    const char *text = scalar_text(value);
    if (text == NULL) return key_error(ld, k, "contains a NUL byte");
    return list_append(ld->cfg, k, text, prob, sizeof prob) == 0 ? 0 : key_error(ld, k, prob);
  }
  if (value->type != YAML_SEQUENCE_NODE) return key_error(ld, k, "expected a list");
  for (yaml_node_item_t *it = value->data.sequence.items.start; it < value->data.sequence.items.top;
       it++) {
    const char *text = scalar_text(yaml_document_get_node(ld->doc, *it));
    if (text == NULL) return key_error(ld, k, "list entries must be single values");
    if (list_append(ld->cfg, k, text, prob, sizeof prob) != 0) return key_error(ld, k, prob);
  }
  return 0;
}

static int load_value(yaml_load *ld, const key_spec *k, yaml_node_t *value) {
  char prob[PROBLEM_LEN];
  if (k->kind == KIND_IGNORED) return 0; /* whatever shape it has, it is not ours yet */
  if (is_list(k)) return load_list(ld, k, value);
  if (value->type != YAML_SCALAR_NODE) return key_error(ld, k, "expected a single value");
  const char *text = scalar_text(value);
  if (text == NULL) return key_error(ld, k, "contains a NUL byte");
  if (apply_scalar(ld->cfg, k, is_null(value) ? "" : text, prob, sizeof prob) != 0)
    return key_error(ld, k, prob);
  if (k->off == FIELD(peer_timeout)) ld->cfg->peer_timeout_explicit = true;
  return 0;
}

static int load_pair(yaml_load *ld, const char *section, yaml_node_pair_t *pair) {
  const char *name = scalar_text(yaml_document_get_node(ld->doc, pair->key));
  if (name == NULL) {
    set_err(ld->err, ld->err_len, "%s: %s: keys must be plain names", ld->path, section);
    return -1;
  }
  const key_spec *k = find_key(section, name);
  if (k == NULL) {
    set_err(ld->err, ld->err_len, "%s: %s.%s: unknown key", ld->path, section, name);
    return -1;
  }
  if (ld->key_seen[k - keys]) return key_error(ld, k, "set twice");
  ld->key_seen[k - keys] = true;
  return load_value(ld, k, yaml_document_get_node(ld->doc, pair->value));
}

static int load_section(yaml_load *ld, const char *section, yaml_node_t *body) {
  if (is_null(body)) return 0; /* "vector_search:" with every key commented out */
  if (body->type != YAML_MAPPING_NODE) {
    set_err(ld->err, ld->err_len, "%s: %s: expected a mapping of keys", ld->path, section);
    return -1;
  }
  for (yaml_node_pair_t *p = body->data.mapping.pairs.start; p < body->data.mapping.pairs.top;
       p++) {
    if (load_pair(ld, section, p) != 0) return -1;
  }
  return 0;
}

static int load_root(yaml_load *ld) {
  yaml_node_t *root = yaml_document_get_root_node(ld->doc);
  if (root == NULL || is_null(root)) return 0; /* an empty file changes nothing */
  if (root->type != YAML_MAPPING_NODE) {
    set_err(ld->err, ld->err_len, "%s: expected sections (tracker:, server:, ...) at the top",
            ld->path);
    return -1;
  }
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
       p++) {
    const char *section = scalar_text(yaml_document_get_node(ld->doc, p->key));
    if (section == NULL || !known_section(section)) {
      set_err(ld->err, ld->err_len, "%s: unknown section \"%s\"", ld->path,
              section ? section : "?");
      return -1;
    }
    if (load_section(ld, section, yaml_document_get_node(ld->doc, p->value)) != 0) return -1;
  }
  return 0;
}

static void syntax_error(const yaml_parser_t *parser, const char *path, char *err, size_t err_len) {
  const char *problem = parser->problem ? parser->problem : "cannot parse";
  if (parser->error == YAML_READER_ERROR) {
    set_err(err, err_len, "%s: %s", path, problem);
    return;
  }
  set_err(err, err_len, "%s: line %zu column %zu: %s%s%s", path, parser->problem_mark.line + 1,
          parser->problem_mark.column + 1, problem, parser->context ? " " : "",
          parser->context ? parser->context : "");
}

/* A second document ("---") would otherwise be ignored without a word, and a syntax
 * error inside it with it. */
static int expect_end(yaml_parser_t *parser, const char *path, char *err, size_t err_len) {
  yaml_document_t doc;
  if (!yaml_parser_load(parser, &doc)) {
    syntax_error(parser, path, err, err_len);
    return -1;
  }
  bool more = yaml_document_get_root_node(&doc) != NULL;
  yaml_document_delete(&doc);
  if (!more) return 0;
  set_err(err, err_len, "%s: more than one YAML document (\"---\"); use one", path);
  return -1;
}

static int load_file(syn_config *cfg, FILE *f, const char *path, char *err, size_t err_len) {
  yaml_parser_t parser;
  yaml_document_t doc;
  if (!yaml_parser_initialize(&parser)) {
    set_err(err, err_len, "%s: out of memory", path);
    return -1;
  }
  yaml_parser_set_input_file(&parser, f);
  int rc = -1;
  if (!yaml_parser_load(&parser, &doc)) {
    syntax_error(&parser, path, err, err_len);
  } else {
    yaml_load ld = {.cfg = cfg, .doc = &doc, .path = path, .err = err, .err_len = err_len};
    rc = load_root(&ld);
    yaml_document_delete(&doc);
  }
  if (rc == 0) rc = expect_end(&parser, path, err, err_len);
  yaml_parser_delete(&parser);
  return rc;
}

int syn_config_load_yaml(syn_config *cfg, const char *path, char *err, size_t err_len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    set_err(err, err_len, "%s: cannot open: %s", path, strerror(errno));
    return -1;
  }
  int rc = load_file(cfg, f, path, err, err_len);
  fclose(f);
  /* A changed interval moves the derived timeout with it, unless the file set one. */
  if (rc == 0 && !cfg->peer_timeout_explicit)
    cfg->peer_timeout = derived_peer_timeout(cfg->announce_interval);
  return rc;
}

/* ---- Command line ------------------------------------------------------------------ */

enum {
  OPT_HOST = 256,
  OPT_UDP_PORT,
  OPT_DATA_DIR,
  OPT_ROLE,
  OPT_NODE_ID,
  OPT_CLUSTER_ADDR,
  OPT_PEER_ADDR,
  OPT_SEEDS,
  OPT_PUBLIC_URL,
  OPT_CLUSTER_KEY_FILE,
  OPT_LOG_FORMAT,
  OPT_INTERVAL_JITTER,
  OPT_WS_PORT,
  OPT_WSS_PORT,
  OPT_TLS_CERT,
  OPT_TLS_KEY,
};

static const struct option long_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, 'p'},
    {"udp-port", required_argument, NULL, OPT_UDP_PORT},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"role", required_argument, NULL, OPT_ROLE},
    {"node-id", required_argument, NULL, OPT_NODE_ID},
    {"cluster-addr", required_argument, NULL, OPT_CLUSTER_ADDR},
    {"peer-addr", required_argument, NULL, OPT_PEER_ADDR},
    {"seeds", required_argument, NULL, OPT_SEEDS},
    {"public-url", required_argument, NULL, OPT_PUBLIC_URL},
    {"cluster-key-file", required_argument, NULL, OPT_CLUSTER_KEY_FILE},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"interval-jitter-percent", required_argument, NULL, OPT_INTERVAL_JITTER},
    {"ws-port", required_argument, NULL, OPT_WS_PORT},
    {"wss-port", required_argument, NULL, OPT_WSS_PORT},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"debug", no_argument, NULL, 'd'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* '+': stop at the first non-option instead of reordering argv; ':': report a missing
 * value as ':' so the message can name the flag. */
static const char short_opts[] = "+:c:p:dhV";

/* Flags that set one YAML key, parsed by the same code as the file. */
static const struct {
  int opt;
  const char *section, *name;
} flag_keys[] = {
    {OPT_HOST, "tracker", "host"},
    {'p', "tracker", "http_port"},
    {OPT_UDP_PORT, "tracker", "udp_port"},
    {OPT_DATA_DIR, "tracker", "data_dir"},
    {OPT_ROLE, "tracker", "role"},
    {OPT_NODE_ID, "tracker", "node_id"},
    {OPT_CLUSTER_ADDR, "tracker", "cluster_addr"},
    {OPT_PEER_ADDR, "cluster", "peer_addr"},
    {OPT_SEEDS, "tracker", "seeds"},
    {OPT_PUBLIC_URL, "server", "public_announce_urls"},
    {OPT_CLUSTER_KEY_FILE, "cluster", "key_file"},
    {OPT_LOG_FORMAT, "tracker", "log_format"},
    {OPT_INTERVAL_JITTER, "server", "interval_jitter_percent"},
    {OPT_WS_PORT, "websocket", "port"},
    {OPT_WSS_PORT, "websocket", "tls_port"},
    {OPT_TLS_CERT, "websocket", "cert_file"},
    {OPT_TLS_KEY, "websocket", "key_file"},
};

const char *syn_config_usage(void) {
  return "Usage: tracker [options]\n"
         "\n"
         "Options (flags override the config file):\n"
         "  -c, --config FILE         load FILE (YAML; see config.yaml) before the flags\n"
         "      --host ADDR           address HTTP and UDP bind to (default ::, IPv4 and IPv6)\n"
         "  -p, --port N              HTTP port, 1-65535 (default 6881)\n"
         "      --udp-port N          UDP port, 0 disables UDP (default 6969)\n"
         "      --data-dir DIR        snapshots and SQLite files (default ./data)\n"
         "      --role ROLE           standalone, node or router (default standalone)\n"
         "      --node-id ID          cluster member id (default: a node's id kept in its\n"
         "                            data directory, made on its first start; a\n"
         "                            router's random one)\n"
         "      --cluster-addr URL    nng URL a node serves routers on (default\n"
         "                            tcp://127.0.0.1:7000)\n"
         "      --peer-addr URL       nng URL for gossip and replication (default: the\n"
         "                            cluster address's port + 1; a router's gossip\n"
         "                            address, default its --cluster-addr)\n"
         "      --seeds URL[,URL...]  nodes to contact on start (replaces the file's list)\n"
         "      --public-url URL      announce URL for magnet links (repeatable)\n"
         "      --cluster-key-file FILE  shared cluster key (or SYNAPSE_CLUSTER_KEY)\n"
         "      --log-format FORMAT   text (default) or json: one object per line\n"
         "      --interval-jitter-percent N  interval told varies by +- N% (default 5)\n"
         "      --ws-port N           WebTorrent ws:// port, 0 disables it (default 6882)\n"
         "      --wss-port N          WebTorrent wss:// port (default 0: off); needs\n"
         "                            --tls-cert and --tls-key\n"
         "      --tls-cert FILE       PEM certificate chain for wss:// (re-read on SIGHUP)\n"
         "      --tls-key FILE        PEM private key for wss://\n"
         "  -d, --debug               debug logging\n"
         "  -h, --help                print this help and exit\n"
         "  -V, --version             print the version and exit\n";
}

static const char *flag_name(int opt) {
  for (const struct option *o = long_opts; o->name != NULL; o++) {
    if (o->val == opt) return o->name;
  }
  return "?";
}

static const key_spec *flag_key(int opt) {
  for (size_t i = 0; i < sizeof flag_keys / sizeof flag_keys[0]; i++) {
    if (flag_keys[i].opt == opt) return find_key(flag_keys[i].section, flag_keys[i].name);
  }
  return NULL;
}

static int getopt_error(int opt, int argc, char **argv, char *err, size_t err_len) {
  if (opt == ':') {
    set_err(err, err_len, "--%s: missing value", flag_name(optopt));
  } else if (optopt != 0 && strcmp(flag_name(optopt), "?") != 0) {
    /* A known option can only fail this way as "--debug=1": a value it does not take. */
    set_err(err, err_len, "--%s: takes no value", flag_name(optopt));
  } else if (optopt != 0) {
    set_err(err, err_len, "unknown option \"-%c\" (see --help)", optopt);
  } else {
    /* An unknown or ambiguous long option: getopt has already stepped past it. */
    const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    set_err(err, err_len, "unknown option \"%s\" (see --help)", arg);
  }
  return -1;
}

typedef struct first_pass {
  const char *config_path; /* the last --config wins, like every other flag */
  bool help, version;
} first_pass;

/* Finds --config, --help and --version, and rejects unknown flags, before anything is
 * applied: the file must be loaded first so that the other flags override it. */
static int scan_args(int argc, char **argv, first_pass *fp, char *err, size_t err_len) {
  int opt;
  optind = 0; /* glibc: 0 also resets its internal state, so parse_args can run again */
  opterr = 0;
  while ((opt = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1) {
    if (opt == '?' || opt == ':') return getopt_error(opt, argc, argv, err, err_len);
    if (opt == 'c') fp->config_path = optarg;
    if (opt == 'h') fp->help = true;
    if (opt == 'V') fp->version = true;
  }
  if (optind < argc) {
    set_err(err, err_len, "unexpected argument \"%s\" (see --help)", argv[optind]);
    return -1;
  }
  return 0;
}

/* --seeds takes a comma-separated list and replaces the file's list. */
static int apply_seeds(syn_config *cfg, const key_spec *k, const char *value, char *prob,
                       size_t prob_len) {
  char *copy = strdup(value);
  if (copy == NULL) {
    set_err(prob, prob_len, "out of memory");
    return -1;
  }
  list_clear(cfg, k);
  int rc = 0;
  char *rest = copy;
  for (char *item = strsep(&rest, ","); item != NULL && rc == 0; item = strsep(&rest, ","))
    rc = list_append(cfg, k, item, prob, prob_len);
  free(copy);
  return rc;
}

typedef struct second_pass {
  bool public_urls_replaced; /* the first --public-url drops the file's list */
} second_pass;

static int apply_flag(syn_config *cfg, int opt, second_pass *sp, char *err, size_t err_len) {
  char prob[PROBLEM_LEN];
  const key_spec *k = flag_key(opt);
  int rc = 0;
  if (opt == 'd') cfg->debug = true;
  if (k == NULL) return 0; /* --config, --help, --version: handled by the first pass */
  if (opt == OPT_SEEDS) {
    rc = apply_seeds(cfg, k, optarg, prob, sizeof prob);
  } else if (opt == OPT_PUBLIC_URL) {
    if (!sp->public_urls_replaced) list_clear(cfg, k);
    sp->public_urls_replaced = true;
    rc = list_append(cfg, k, optarg, prob, sizeof prob);
  } else {
    rc = apply_scalar(cfg, k, optarg, prob, sizeof prob);
  }
  if (rc != 0) set_err(err, err_len, "--%s: %s", flag_name(opt), prob);
  return rc;
}

/* server.udp_secret_file (a Kubernetes Secret mounted as a file) replaces
 * server.udp_secret; blanks around the text (a trailing newline) are not part of it. */
static int read_udp_secret_file(syn_config *cfg) {
  if (!cfg->udp_secret_file || !cfg->udp_secret_file[0]) return 0;
  FILE *f = fopen(cfg->udp_secret_file, "rb");
  if (!f) return -1;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  bool bad = ferror(f) != 0 || n == sizeof buf - 1;
  fclose(f);
  buf[n] = '\0';
  bad |= strlen(buf) != n;
  while (n && isspace((unsigned char)buf[n - 1])) buf[--n] = '\0';
  size_t lead = strspn(buf, " \t\r\n");
  int rc = bad ? -1 : replace_str(&cfg->udp_secret, buf + lead);
  explicit_bzero(buf, sizeof buf);
  return rc;
}

/* Secrets from the environment (a Kubernetes Secret), so they never appear in a
 * command line that `ps` shows: SYNAPSE_UDP_SECRET replaces server.udp_secret (and its
 * file) and SYNAPSE_API_TOKEN is added to api.tokens. */
static int apply_secret_env(syn_config *cfg) {
  const char *secret = getenv("SYNAPSE_UDP_SECRET");
  if (secret && *secret) {
    char *copy = strdup(secret);
    if (!copy) return -1;
    free(cfg->udp_secret);
    cfg->udp_secret = copy;
  }
  const char *token = getenv("SYNAPSE_API_TOKEN");
  if (token && *token && cfg->api_token_count < SYN_MAX_API_TOKENS) {
    char *copy = strdup(token);
    if (!copy) return -1;
    cfg->api_tokens[cfg->api_token_count++] = copy;
  }
  return 0;
}

/* Reads the key file into cfg->cluster_key: one key a line, more than one while a key is
 * rotated. A Secret mounted as a file usually ends in a newline: blanks around a key are
 * not part of it (common/cluster_auth.h). */
static int read_key_file(syn_config *cfg, char *err, size_t err_len) {
  const char *path = cfg->cluster_key_file;
  FILE *f = fopen(path, "rb");
  if (!f) {
    set_err(err, err_len, "cluster.key_file: cannot read \"%s\": %s", path, strerror(errno));
    return -1;
  }
  char buf[SYN_CLUSTER_KEYS_MAX * (SYN_CLUSTER_KEY_MAX + 2) + 2];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  bool failed = ferror(f) != 0;
  fclose(f);
  buf[n] = '\0';
  int rc = -1;
  if (failed)
    set_err(err, err_len, "cluster.key_file: cannot read \"%s\"", path);
  else if (n == sizeof buf - 1)
    set_err(err, err_len, "cluster.key_file: \"%s\" is larger than a key", path);
  else if (strlen(buf) != n)
    set_err(err, err_len, "cluster.key_file: \"%s\" holds a NUL byte: not a text key", path);
  else if ((rc = replace_str(&cfg->cluster_key, buf)) != 0)
    set_err(err, err_len, "out of memory");
  explicit_bzero(buf, sizeof buf);
  return rc;
}

/* The cluster key has three sources: cluster.key, cluster.key_file (--cluster-key-file)
 * and SYNAPSE_CLUSTER_KEY. Two at once are refused rather than ranked: processes that
 * quietly took different ones would never hear each other. */
static int resolve_cluster_key(syn_config *cfg, char *err, size_t err_len) {
  const char *env = getenv("SYNAPSE_CLUSTER_KEY");
  int in_env = env && *env, in_yaml = cfg->cluster_key && cfg->cluster_key[0];
  int in_file = cfg->cluster_key_file && cfg->cluster_key_file[0];
  if (in_env + in_yaml + in_file > 1) {
    set_err(err, err_len, "cluster key given twice (%s%s%s): give it in one place",
            in_yaml ? "cluster.key " : "", in_file ? "cluster.key_file " : "",
            in_env ? "SYNAPSE_CLUSTER_KEY" : "");
    return -1;
  }
  if (in_file) return read_key_file(cfg, err, err_len);
  if (in_env && replace_str(&cfg->cluster_key, env) != 0) {
    set_err(err, err_len, "out of memory");
    return -1;
  }
  return 0;
}

int syn_config_parse_args(syn_config *cfg, int argc, char **argv, char *err, size_t err_len) {
  first_pass fp = {0};
  if (scan_args(argc, argv, &fp, err, err_len) != 0) return -1;
  if (fp.help || fp.version) {
    fputs(fp.help ? syn_config_usage() : SYN_VERSION_TEXT "\n", stdout);
    return 1;
  }
  if (fp.config_path != NULL && syn_config_load_yaml(cfg, fp.config_path, err, err_len) != 0)
    return -1;

  second_pass sp = {0};
  int opt;
  optind = 0;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, short_opts, long_opts, NULL)) != -1) {
    if (apply_flag(cfg, opt, &sp, err, err_len) != 0) return -1;
  }
  if (read_udp_secret_file(cfg) != 0) {
    set_err(err, err_len,
            "server.udp_secret_file: cannot read \"%s\" (or it holds a NUL byte or over 1 KiB)",
            cfg->udp_secret_file);
    return -1;
  }
  if (apply_secret_env(cfg) != 0) return -1;
  return resolve_cluster_key(cfg, err, err_len);
}

/* ---- Validation -------------------------------------------------------------------- */

typedef struct range_rule {
  const char *name; /* as in config.yaml */
  uint32_t value, lo, hi;
} range_rule;

/* Bounds beyond which a value is a typo or a foot-gun, not a choice. */
static int check_ranges(const syn_config *c, char *err, size_t err_len) {
  const range_rule rules[] = {
      {"server.announce_interval", c->announce_interval, 1, 86400},
      {"server.min_interval", c->min_interval, 1, 86400},
      {"server.peer_timeout", c->peer_timeout, 1, 7 * 86400},
      {"server.default_numwant", c->default_numwant, 1, 1000},
      {"server.max_peers_returned", c->max_numwant, 1, 1000},
      {"server.full_scrape_interval", c->full_scrape_interval, 1, 86400},
      {"server.full_scrape_max", c->full_scrape_max, 1, 1000000},
      {"server.request_timeout_ms", c->request_timeout_ms, 1, 60000},
      {"cluster.partitions", c->partitions, 1, 65536},
      {"cluster.replication", c->replication, 1, 16},
      {"cluster.write_quorum", c->write_quorum, 1, c->replication},
      {"cluster.probe_interval_ms", c->probe_interval_ms, 10, 60000},
      {"cluster.probe_timeout_ms", c->probe_timeout_ms, 5, c->probe_interval_ms},
      {"cluster.suspicion_mult", c->suspicion_mult, 1, 100},
      {"cluster.suspicion_max_mult", c->suspicion_max_mult, 1, 100},
      {"cluster.reap_timeout_s", c->reap_timeout_s, 1, 7 * 86400},
      {"cluster.replication_interval_ms", c->replication_interval_ms, 1, 60000},
      {"cluster.replication_idle_s", c->replication_idle_s, 1, 86400},
      {"cluster.tombstone_grace_s", c->tombstone_grace_s, 2, 365 * 86400},
      {"cluster.anti_entropy_interval_ms", c->anti_entropy_interval_ms, 100, 3600000},
      {"limits.max_request_line", c->max_request_line, 64, 1048576},
      {"limits.max_header_bytes", c->max_header_bytes, 256, 1048576},
      {"limits.max_headers", c->max_headers, 1, 1024},
      {"limits.max_body", c->max_body, 1, 64 * 1048576},
      {"limits.max_batch_body", c->max_batch_body, 1, 256 * 1048576},
      {"vector_search.feedback_docs", c->feedback_docs, 1, 16},
      {"limits.max_connections", c->max_connections, 1, 1000000},
      {"limits.idle_timeout_ms", c->idle_timeout_ms, 100, 3600000},
      {"limits.header_timeout_ms", c->header_timeout_ms, 100, 600000},
      {"limits.linger_ms", c->linger_ms, 0, 60000},
      {"limits.max_connections_per_ip", c->max_connections_per_ip, 1, 1000000},
      {"limits.announce_rate", c->rate_per_s[0], 0, 1000000},
      {"limits.announce_burst", c->rate_burst[0], 1, 1000000},
      {"limits.scrape_rate", c->rate_per_s[1], 0, 1000000},
      {"limits.scrape_burst", c->rate_burst[1], 1, 1000000},
      {"limits.api_read_rate", c->rate_per_s[2], 0, 1000000},
      {"limits.api_read_burst", c->rate_burst[2], 1, 1000000},
      {"limits.api_write_rate", c->rate_per_s[3], 0, 1000000},
      {"limits.api_write_burst", c->rate_burst[3], 1, 1000000},
      {"limits.rate_table_entries", c->rate_table_entries, 4, 16777216},
      {"node.workers", c->node_workers, 1, 256},
      {"node.swarm_snapshot_max_mb", c->swarm_snapshot_max_mb, 1, 1048576},
      {"server.interval_jitter_percent", c->interval_jitter_percent, 0, 50},
      {"websocket.max_message_bytes", c->ws_max_message, 1024, 16 * 1048576},
      {"websocket.max_offers", c->ws_max_offers, 0, 64},
      {"websocket.max_connections_per_ip", c->ws_max_connections_per_ip, 1, 1000000},
      {"websocket.max_swarms_per_socket", c->ws_max_swarms_per_socket, 1, 4096},
      {"websocket.interval", c->ws_interval, 10, 86400},
  };
  for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
    const range_rule *r = &rules[i];
    if (r->value >= r->lo && r->value <= r->hi) continue;
    set_err(err, err_len, "%s: %u is out of range (%u-%u)", r->name, r->value, r->lo, r->hi);
    return -1;
  }
  return 0;
}

static int check_strings(const syn_config *c, char *err, size_t err_len) {
  const struct {
    const char *name, *value;
  } required[] = {
      {"tracker.host", c->host},
      {"tracker.cluster_addr", c->cluster_addr},
      {"tracker.data_dir", c->data_dir},
  };
  for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
    if (required[i].value != NULL && required[i].value[0] != '\0') continue;
    set_err(err, err_len, "%s: must not be empty", required[i].name);
    return -1;
  }
  if (!c->log_format || (strcmp(c->log_format, "text") && strcmp(c->log_format, "json"))) {
    set_err(err, err_len, "tracker.log_format: \"%s\" is not text or json",
            c->log_format ? c->log_format : "");
    return -1;
  }
  /* A short shared key would let anyone forge connection IDs (BEP 15's spoofing guard). */
  if (c->udp_secret != NULL && c->udp_secret[0] != '\0' && strlen(c->udp_secret) < 16) {
    set_err(err, err_len, "server.udp_secret: shorter than 16 characters (empty = random)");
    return -1;
  }
  if (syn_cluster_key_check(c->cluster_key, err, err_len) != 0) return -1;
  if (c->wss_port && (!c->ws_cert_file[0] || !c->ws_key_file[0])) {
    set_err(err, err_len, "websocket.tls_port: needs websocket.cert_file and websocket.key_file");
    return -1;
  }
  if (c->ws_port && c->ws_port == c->wss_port) {
    set_err(err, err_len, "websocket.tls_port: the same port as websocket.port");
    return -1;
  }
  return 0;
}

static int check_relations(const syn_config *c, char *err, size_t err_len) {
  if (c->min_interval > c->announce_interval) {
    set_err(err, err_len, "server.min_interval (%u) is greater than server.announce_interval (%u)",
            c->min_interval, c->announce_interval);
    return -1;
  }
  if (c->peer_timeout < c->announce_interval) {
    set_err(err, err_len,
            "server.peer_timeout (%u) is shorter than server.announce_interval (%u): peers "
            "would expire between announces",
            c->peer_timeout, c->announce_interval);
    return -1;
  }
  if (c->default_numwant > c->max_numwant) {
    set_err(err, err_len,
            "server.default_numwant (%u) is greater than server.max_peers_returned (%u)",
            c->default_numwant, c->max_numwant);
    return -1;
  }
  if (c->tombstone_grace_s <= c->reap_timeout_s) {
    set_err(err, err_len,
            "cluster.tombstone_grace_s (%u) must be longer than cluster.reap_timeout_s (%u): a "
            "node away that long must find its deletes remembered",
            c->tombstone_grace_s, c->reap_timeout_s);
    return -1;
  }
  if (c->role == SYN_PROCESS_ROUTER && c->seed_count == 0) {
    set_err(err, err_len, "tracker.seeds: a router needs at least one node to contact");
    return -1;
  }
  return 0;
}

int syn_config_validate(const syn_config *cfg, char *err, size_t err_len) {
  if (check_ranges(cfg, err, err_len) != 0) return -1;
  if (check_strings(cfg, err, err_len) != 0) return -1;
  return check_relations(cfg, err, err_len);
}
