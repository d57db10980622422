/* Cluster trust: one shared key authenticates every nng message between the processes
 * of a cluster (gossip and node-to-node app calls on the peer sockets, router -> node
 * batches and their replies on the data sockets). The one rule in one place: each send
 * site seals the message body, each receive site opens it before parsing anything, and
 * a message that does not open is dropped unparsed (counted, logged at most every 10 s).
 *
 * The seal is a trailer of SYN_CLUSTER_AUTH_OVERHEAD bytes appended to the body:
 *
 *   body | 00 'S' 'Y' 01 | time (8, wall-clock ms, little-endian) | nonce (8) | tag (32)
 *
 * The leading zero byte is protobuf's invalid field number 0: every body is protobuf, so
 * a process without the key rejects a sealed message whole instead of half-reading it.
 *
 * tag = BLAKE2b-256 keyed with the cluster key (libsodium crypto_generichash with a key:
 * a MAC, 3-4x cheaper per byte than HMAC-SHA-256 here) over kind | bind | body | time |
 * nonce. The key is BLAKE2b-256 of the configured text (personalised), so any text of
 * at least SYN_CLUSTER_KEY_MIN characters works: `openssl rand -hex 32` or
 * `head -c 32 /dev/urandom | base64`. Tags are compared in constant time.
 *
 * What it protects:
 * - Without the key a process cannot join (its gossip is dropped), inject or change
 *   membership, push replication, ask for records (anti-entropy, hand-off), send
 *   batches to a node or answer a router: nothing it sends is parsed.
 * - kind binds the direction and the socket (a gossip request cannot pass for a reply,
 *   or for a router batch). A reply is bound to its request: bind is the request's
 *   tag, so a recorded reply cannot answer another request.
 * - time bounds replay: a message more than SYN_CLUSTER_AUTH_WINDOW_MS away from the
 *   receiver's clock is refused, so a recorded batch (a register that a delete later
 *   undid, say) cannot be replayed later than that. The processes' clocks must agree
 *   within the window (NTP does; a batch's deadline already assumes it).
 * What it does not:
 * - Replay within the window: a captured request can be sent again, to the same member
 *   or to another one (the destination is not bound), for 60 s. Gossip is idempotent
 *   and versioned writes apply once; a replayed announce re-adds a peer.
 * - Confidentiality: it is a MAC, not encryption. Anyone on the path reads everything
 *   (use a private network, a service mesh or WireGuard for that).
 * - A member that holds the key is trusted completely.
 *
 * Rotation: the key text may hold up to SYN_CLUSTER_KEYS_MAX keys, one a line (blank and
 * '#' lines skipped). The first seals; a message sealed with any of them opens. So a key
 * is rotated with rolling restarts and no split: every process gets "old\nnew" (seals
 * old, accepts both), then "new\nold" (seals new, still accepts old), then "new".
 *
 * No key (NULL auth): seal and open do nothing and the cluster is open, as before keys.
 *
 * Threads: an auth is immutable after syn_cluster_auth_new but for its atomic counters;
 * every function may be called from any thread at once. None blocks. */
#ifndef SYN_COMMON_CLUSTER_AUTH_H
#define SYN_COMMON_CLUSTER_AUTH_H

#include <nng/nng.h>
#include <stddef.h>
#include <stdint.h>

#define SYN_CLUSTER_AUTH_TAG 32
#define SYN_CLUSTER_AUTH_OVERHEAD 52
#define SYN_CLUSTER_AUTH_WINDOW_MS 60000 /* replay window; also the clock skew tolerated */
#define SYN_CLUSTER_KEY_MIN 32           /* characters, leading/trailing blanks excluded */
#define SYN_CLUSTER_KEY_MAX 4096
#define SYN_CLUSTER_KEYS_MAX 4 /* keys accepted at once, while one is rotated */

/* What a message is; part of the MAC, so one kind cannot pass for another. */
typedef enum syn_auth_kind {
  SYN_AUTH_GOSSIP_REQUEST = 1, /* to a peer socket: gossip or an app call */
  SYN_AUTH_GOSSIP_REPLY = 2,   /* its answer */
  SYN_AUTH_BATCH_REQUEST = 3,  /* router -> node data socket */
  SYN_AUTH_BATCH_REPLY = 4,    /* its answer */
} syn_auth_kind;

typedef struct syn_cluster_auth syn_cluster_auth;

/* Checks a key's text (one key a line, at most SYN_CLUSTER_KEYS_MAX): 0 when it is
 * usable or empty/NULL (no key), else -1 with a message naming the problem. Called by
 * syn_config_validate. */
int syn_cluster_key_check(const char *text, char *err, size_t err_len);

/* Derives the key from `text` (which must pass syn_cluster_key_check and not be empty).
 * NULL with a message in err. The caller owns the result. */
syn_cluster_auth *syn_cluster_auth_new(const char *text, char *err, size_t err_len);
void syn_cluster_auth_free(syn_cluster_auth *a);

/* ---- nng messages (every send and receive site) ---- */

/* Appends the seal to msg's body. `bind`: the request's tag for a reply (from open),
 * NULL for a request. `tag`, if not NULL, receives this message's tag (a requester
 * keeps it to open the reply). NULL auth: nothing is appended and tag is zeroed.
 * 0 or -ENOMEM (msg unchanged but possibly grown). */
int syn_cluster_auth_seal(syn_cluster_auth *a, nng_msg *msg, syn_auth_kind kind,
                          const uint8_t *bind, uint8_t tag[SYN_CLUSTER_AUTH_TAG]);

/* A new message holding body[0, len) and then tail[0, tail_len) (tail may be NULL), sealed
 * as by syn_cluster_auth_seal, for the caller to send; *out is NULL on -ENOMEM. Every
 * message the project hands nng to send is made here, in one allocation sized for the
 * seal: nng 1.5.2 loses a message whose pipe closes while it is being sent (tcp's
 * pipe_send returns without completing an aio that nni_aio_begin refused, and rep0/req0
 * never free what that aio holds), and tests/lsan.supp suppresses exactly the leaks
 * allocated by this function, so a leak of any other message still fails the tests. */
int syn_cluster_auth_sealed_msg(syn_cluster_auth *a, nng_msg **out, const void *body, size_t len,
                                const void *tail, size_t tail_len, syn_auth_kind kind,
                                const uint8_t *bind, uint8_t tag[SYN_CLUSTER_AUTH_TAG]);

/* Verifies and strips the seal of a received msg. 0: msg's body is what the sender
 * sealed, and `tag` (if not NULL) holds its tag. Otherwise a negative code (-EBADMSG: no
 * seal, the sender has no key; -EPERM: wrong key or altered; -ETIME: outside the replay
 * window), counted and logged (at most once per 10 s, with the sender's address); msg is
 * left as it was and the caller drops it. NULL auth: 0 and nothing is touched. */
int syn_cluster_auth_open(syn_cluster_auth *a, nng_msg *msg, syn_auth_kind kind,
                          const uint8_t *bind, uint8_t tag[SYN_CLUSTER_AUTH_TAG]);

/* Messages refused by open since start (0 for NULL). */
uint64_t syn_cluster_auth_failures(const syn_cluster_auth *a);

/* ---- byte buffers (pure: the clock and nonce are arguments; unit tests) ---- */

/* Writes the seal of body[0, len) into trailer. */
void syn_cluster_auth_seal_buf(const syn_cluster_auth *a, syn_auth_kind kind, const uint8_t *bind,
                               uint64_t now_ms, uint64_t nonce, const uint8_t *body, size_t len,
                               uint8_t trailer[SYN_CLUSTER_AUTH_OVERHEAD],
                               uint8_t tag[SYN_CLUSTER_AUTH_TAG]);

/* Checks a sealed buffer (body and trailer, len bytes) as received at now_ms: 0 (the
 * body is the first len - SYN_CLUSTER_AUTH_OVERHEAD bytes) or a code as for open. */
int syn_cluster_auth_open_buf(const syn_cluster_auth *a, syn_auth_kind kind, const uint8_t *bind,
                              uint64_t now_ms, const uint8_t *msg, size_t len,
                              uint8_t tag[SYN_CLUSTER_AUTH_TAG]);

/* Text for a code of open. */
const char *syn_cluster_auth_strerror(int rc);

#endif
