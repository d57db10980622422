/* Process configuration: one struct, filled from defaults, then config.yaml, then the
 * command line (later sources win). Every field is documented with its unit and the
 * trade-off; syn_config_defaults gives the reason for each default. config.yaml at the
 * top of the repository is the commented sample; its layout follows the seed README's
 * (tracker / server / limits / node / database / vector_search sections).
 *
 * Ownership: strings inside the struct are heap copies owned by the struct and freed by
 * syn_config_free. Loaded once at start on the main thread, read-only afterwards. */
#ifndef SYN_COMMON_CONFIG_H
#define SYN_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SYN_MAX_TRUSTED_PROXIES 32
#define SYN_MAX_SEEDS 32
#define SYN_MAX_PUBLIC_URLS 8
#define SYN_MAX_API_TOKENS 8

typedef enum syn_role {
  SYN_PROCESS_STANDALONE = 0, /* router and node in one process over inproc:// */
  SYN_PROCESS_NODE,           /* swarm store and shard index, served over nng */
  SYN_PROCESS_ROUTER,         /* stateless HTTP/UDP front end */
} syn_role;

typedef struct syn_cidr {
  uint8_t addr[16]; /* IPv4 stored as IPv4-mapped IPv6 */
  uint8_t prefix;   /* 0..128, counted on the mapped form */
} syn_cidr;

typedef struct syn_config {
  /* tracker: */
  char *host;         /* address HTTP and UDP bind to ("0.0.0.0", "::") */
  uint16_t http_port; /* HTTP announce/scrape/API; for --role node, the admin port */
  uint16_t udp_port;  /* BEP 15; 0 disables UDP */
  syn_role role;
  char *node_id;       /* member id; empty = a node's id stored in its data directory
                          (generated on its first start), a router's fresh random one */
  char *cluster_addr;  /* nng URL a node listens on for routers and advertises */
  char *peer_addr;     /* nng URL for gossip and replication; empty = cluster_addr's
                          port + 1 (a router: cluster_addr itself) */
  char *seeds[SYN_MAX_SEEDS]; /* nng URLs of nodes a router or node contacts */
  size_t seed_count;
  char *data_dir;      /* swarm snapshots, SQLite, index snapshots */
  bool debug;          /* debug logging */
  /* "text": plain lines; "json": one object per line (common/log.h) */
  char *log_format;

  /* server: */
  uint32_t announce_interval;  /* s; longer = less load, slower peer discovery */
  uint32_t min_interval;       /* s; clients must not announce more often: a re-announce
                                  sooner is answered but not applied (node/swarm.h) */
  uint32_t peer_timeout;       /* s without announce before a peer expires */
  bool peer_timeout_explicit;  /* set by config; if false, peer_timeout follows
                                  announce_interval (2 * interval + 300) */
  uint32_t default_numwant;    /* peers returned when the client does not say */
  uint32_t max_numwant;        /* upper bound on numwant (max_peers_returned) */
  bool full_scrape;            /* allow /scrape without info_hash */
  uint32_t full_scrape_interval; /* s; at most one full scrape per client IP per interval */
  uint32_t full_scrape_max;    /* entries in one full scrape reply */
  syn_cidr trusted_proxies[SYN_MAX_TRUSTED_PROXIES]; /* X-Forwarded-For honoured from these */
  size_t trusted_proxy_count;
  char *udp_secret;            /* connection-ID key, shared by all routers; empty = the key
                                  generated once in data_dir (common/connid.h) */
  char *udp_secret_file;       /* file holding udp_secret (a mounted Secret); empty = none */
  uint32_t request_timeout_ms; /* deadline of a request forwarded to a node */
  /* The interval told varies by +- this %, so clients that started together (after a
   * restart) do not stay in step. */
  uint32_t interval_jitter_percent;
  char *public_urls[SYN_MAX_PUBLIC_URLS]; /* announce URLs put in magnet links */
  size_t public_url_count;

  /* limits (HTTP): */
  uint32_t max_request_line; /* bytes; 414 beyond */
  uint32_t max_header_bytes; /* bytes of all headers; 431 beyond */
  uint32_t max_headers;      /* header count; 431 beyond */
  uint32_t max_body;         /* bytes; 413 beyond */
  uint32_t max_batch_body;   /* bytes of a POST /api/register/batch body (up to 1,000
                                shards); 413 beyond; never below max_body */
  uint32_t max_connections;  /* open HTTP connections; new ones are closed beyond */
  uint32_t idle_timeout_ms;  /* keep-alive connection idle time before close */
  uint32_t header_timeout_ms; /* a request's whole head must arrive within this (408) */
  uint32_t linger_ms;        /* after an error reply, unread input is drained this long */
  uint32_t max_connections_per_ip; /* open HTTP connections of one client (IPv6: /64) */
  bool rate_limit;           /* per-client token buckets on HTTP and UDP requests */
  uint32_t rate_per_s[4];    /* per class (router/client_limits.h order: announce,
                                scrape, api_read, api_write); 0 = that class unlimited */
  uint32_t rate_burst[4];    /* requests a quiet client may send at once, per class */
  uint32_t rate_table_entries; /* clients tracked at once (32 bytes each) */

  /* websocket: WebTorrent tracking (router/ws_server.h), on routers and standalone */
  uint16_t ws_port;          /* ws:// listener on host; 0 = off */
  uint16_t wss_port;         /* wss:// listener; 0 = off; needs ws_cert_file and ws_key_file */
  char *ws_cert_file;        /* PEM certificate chain; re-read on SIGHUP */
  char *ws_key_file;         /* PEM private key */
  uint32_t ws_max_message;   /* bytes of one message; the socket is closed (1009) beyond */
  uint32_t ws_max_offers;    /* offers in one announce; a failure reason beyond */
  uint32_t ws_max_connections_per_ip; /* open WebSocket connections of one client (IPv6: /64) */
  uint32_t ws_max_swarms_per_socket;  /* info_hashes one socket may announce in */
  uint32_t ws_interval;      /* s told to WebSocket clients; their entries live 2x + 60 s */

  /* node: */
  uint32_t node_workers; /* threads serving router requests on a node */
  bool swarm_snapshot;   /* swarms written to data_dir at stop and read at start */
  /* MiB; bound on the snapshot file, both ways */
  uint32_t swarm_snapshot_max_mb;

  /* cluster: (0 = the component's default, see cluster/) */
  uint32_t partitions;        /* fixed partitions of the info_hash space */
  uint32_t replication;       /* R: replicas per partition, capped by the node count */
  uint32_t write_quorum;      /* W: replicas that persist a registration before it is acked */
  uint32_t probe_interval_ms; /* SWIM: one member probed per interval */
  uint32_t probe_timeout_ms;  /* SWIM: direct ping deadline before indirect probes */
  uint32_t suspicion_mult;    /* Lifeguard: suspect -> dead after at least
                                 mult*max(1,log10 N)*interval (with mult-2 confirmations) */
  uint32_t suspicion_max_mult; /* ... and at most max_mult times that (no confirmation) */
  uint32_t reap_timeout_s;    /* a dead node leaves the ring after this long */
  uint32_t replication_interval_ms; /* swarm changes are pushed to replicas this often */
  uint32_t replication_idle_s;      /* a replica's pusher ends after this long with nothing */
  uint32_t tombstone_grace_s; /* deletes are remembered (tombstones) this long; always
                                 longer than reap_timeout_s */
  uint32_t anti_entropy_interval_ms; /* replicas compare partition digests this often */
  char *cluster_key;      /* shared secret authenticating every message between routers and
                             nodes (common/cluster_auth.h), at least 32 characters; empty =
                             an open cluster. After parse_args it holds the key whichever
                             source gave it (cluster.key, the key file, SYNAPSE_CLUSTER_KEY) */
  char *cluster_key_file; /* file holding the key (a mounted Kubernetes Secret), read at start */

  /* api: */
  char *api_tokens[SYN_MAX_API_TOKENS]; /* bearer tokens for register and delete; none =
                                           open (fine on a laptop, not on the internet) */
  size_t api_token_count;
  char *api_tokens_file; /* more write tokens, one a line (a mounted Kubernetes Secret);
                            re-read on SIGHUP and POST /admin/reload. SYNAPSE_API_TOKENS
                            (comma-separated) adds more. Several at once, for rotation */
  char *api_admin_tokens[SYN_MAX_API_TOKENS]; /* bearer tokens for the /admin endpoints; none = the
                                                  admin endpoints are refused (403) */
  size_t api_admin_token_count;
  char *api_admin_tokens_file; /* as api_tokens_file, for admin tokens (and
                                  SYNAPSE_ADMIN_TOKENS) */

  /* access: lists re-read on SIGHUP and POST /admin/reload (router/access.h); empty =
   * no such list. Order: router/access.h's syn_access_list_kind (info_hash allow, deny,
   * ip allow, deny). */
  char *access_files[4];
  bool registered_only; /* tracker.registered_only: only info_hashes registered as shards
                           are tracked (the registry is the whitelist) */

  /* embedding: the service /api/search uses to embed text queries; no URL = keyword
   * search only. */
  char *embedding_url;          /* e.g. http://127.0.0.1:11434/api/embed */
  char *embedding_api;          /* "ollama" (/api/embed) or "openai" (/v1/embeddings) */
  char *embedding_model;        /* model name sent to the service */
  char *embedding_query_prefix; /* prepended to queries ("search_query: " for nomic) */
  uint32_t embedding_timeout_ms; /* past it, the answer comes from keywords alone */

  /* vector_search: numbers are 0 for "the index's own default" (index/index_config.h). */
  char *index_type;             /* auto, flat, flat_sq8, ivf, ivf_sq8, hnsw, hnsw_sq8 */
  uint32_t auto_threshold;      /* auto: vectors at which exact search gives way to IVF */
  uint32_t hnsw_m;
  uint32_t hnsw_ef_construction;
  uint32_t hnsw_ef_search;
  uint32_t ivf_nlist;
  uint32_t ivf_nprobe;
  bool search_feedback;   /* text search without an embedding: pseudo-relevance feedback */
  uint32_t feedback_docs; /* best keyword hits whose embeddings make its query (1-16) */
} syn_config;

/* Fills every field with its default. Strings are allocated. */
void syn_config_defaults(syn_config *cfg);

/* Loads a YAML file over the current values. 0, or -1 with a one-line message naming
 * the file, key and problem in err ("config.yaml: server.min_interval: "x" is not a
 * number"). On error cfg may be partly updated but stays freeable; callers exit. */
int syn_config_load_yaml(syn_config *cfg, const char *path, char *err, size_t err_len);

/* Parses argv (flags as documented by syn_config_usage) over the current values; a
 * --config FILE is loaded first, so flags override the file. Returns 0 to run, 1 when
 * --help or --version was printed, -1 with a message in err on a bad flag or value. */
int syn_config_parse_args(syn_config *cfg, int argc, char **argv, char *err, size_t err_len);

/* Checks cross-field consistency (numwant bounds, intervals). 0 or -1 with message. */
int syn_config_validate(const syn_config *cfg, char *err, size_t err_len);

/* The announce interval told to one client: announce_interval +- interval_jitter_percent,
 * picked by `r` (any random word), never below min_interval. */
uint32_t syn_config_told_interval(const syn_config *cfg, uint32_t r);

/* The address to bind instead of `host` when the kernel has no IPv6: "0.0.0.0" for
 * "::" (the dual-stack default), NULL for anything else (an explicit address fails). */
const char *syn_host_ipv4_fallback(const char *host);

/* Parses "10.0.0.0/8", "::1/128", "192.168.1.7". 0 or -1. */
int syn_cidr_parse(const char *text, syn_cidr *out);
/* ip is 4 or 16 bytes; IPv4 is matched as IPv4-mapped IPv6. */
bool syn_cidr_contains(const syn_cidr *cidr, const uint8_t *ip, size_t ip_len);

const char *syn_config_usage(void);
const char *syn_role_name(syn_role role);
void syn_config_free(syn_config *cfg);

#endif
