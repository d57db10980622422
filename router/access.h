/* Access lists on the router: which info_hashes may be tracked and which client
 * addresses may use the tracker, loaded from files (config: access.*_file).
 *
 * - Four optional lists: info_hash allow and deny, IP allow and deny. An allow list that
 *   is configured admits only what it names (an empty file admits nothing); a deny list
 *   refuses what it names; deny wins over allow.
 * - File format: one entry per line, '#' starts a comment, blank lines are skipped.
 *   info_hashes are 40 hex digits (v1) or 64 (v2, matched on its first 20 bytes as BEP 52
 *   clients announce it: common/shard_rules.h); addresses are CIDRs or single addresses,
 *   IPv4 or IPv6 (common/config.h's syn_cidr_parse). A bad line fails the whole load with
 *   "FILE:LINE: problem".
 * - Lookups: info_hashes in a hash set (common/keyset.h, one or two cache lines); address
 *   ranges sorted and merged over the 128-bit space (IPv4 as IPv4-mapped IPv6), found by
 *   binary search: O(log n) for any list size.
 * - A loaded syn_access_lists is immutable. Reloading builds new lists off to the side
 *   (syn_access_lists_load, on a libuv worker thread: a million entries take seconds)
 *   and swaps one pointer on the loop thread (syn_access_install); on error the old lists
 *   stay.
 *
 * syn_access_* run on the loop thread (the router's); syn_access_lists_* are pure and run
 * on any thread. */
#ifndef SYN_ROUTER_ACCESS_H
#define SYN_ROUTER_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"

typedef enum syn_access_list_kind {
  SYN_ACCESS_HASH_ALLOW,
  SYN_ACCESS_HASH_DENY,
  SYN_ACCESS_IP_ALLOW,
  SYN_ACCESS_IP_DENY,
  SYN_ACCESS_LISTS
} syn_access_list_kind;

/* Why a request was refused (counted for /metrics). */
typedef enum syn_access_reason {
  SYN_REFUSED_IP,             /* ip_denied */
  SYN_REFUSED_HASH,           /* info_hash_denied */
  SYN_REFUSED_NOT_REGISTERED, /* not_registered (tracker.registered_only, by the node) */
  SYN_REFUSED_REASONS
} syn_access_reason;

#define SYN_ACCESS_IP_DENIED_TEXT "your address is not allowed on this tracker"
#define SYN_ACCESS_HASH_DENIED_TEXT "info_hash is not allowed on this tracker"

typedef struct syn_access_lists syn_access_lists;

/* Loads the lists whose path is non-NULL and non-empty (paths[kind]). *out is NULL when
 * no list is configured. 0, or -1 with "FILE:LINE: problem" (or "FILE: why") in err. */
int syn_access_lists_load(const char *const paths[SYN_ACCESS_LISTS], syn_access_lists **out,
                          char *err, size_t err_len);
void syn_access_lists_free(syn_access_lists *l);

/* Entries loaded into one list (0 for a list not configured). */
size_t syn_access_lists_size(const syn_access_lists *l, syn_access_list_kind kind);
/* ip is 4 or 16 bytes. NULL lists allow everything. */
bool syn_access_lists_ip_allowed(const syn_access_lists *l, const uint8_t *ip, size_t ip_len);
bool syn_access_lists_hash_allowed(const syn_access_lists *l, const uint8_t key[20]);

/* The router's current lists and what their reloads did. */
typedef struct syn_access {
  char *paths[SYN_ACCESS_LISTS]; /* copies; NULL = not configured */
  syn_access_lists *lists;       /* NULL = nothing configured */
  uint64_t refused[SYN_REFUSED_REASONS];
  int64_t reloaded_at_ms; /* wall clock of the last load attempt */
  bool last_ok;
  char last_error[512];
  uint64_t reloads, reload_failures;
} syn_access;

/* Loads the configured files. 0, or -1 with the error (the process should not start). */
int syn_access_init(syn_access *a, const syn_config *cfg, char *err, size_t err_len);
/* Reads the files again, on this thread, and installs the outcome. 0 or -1. */
int syn_access_reload(syn_access *a, char *msg, size_t msg_len);
/* Records the outcome of a load (rc and err from syn_access_lists_load over a->paths):
 * on success swaps `fresh` in (taking it) and frees the old lists, on failure keeps the
 * old lists. Writes what was loaded, or the error, to msg. Returns rc. */
int syn_access_install(syn_access *a, int rc, syn_access_lists *fresh, const char *err, char *msg,
                       size_t msg_len);
void syn_access_free(syn_access *a);

/* The one call per request path: NULL when the client at ip may go on with the n
 * info_hashes (n = 0: none to check, as for the JSON API or a full scrape), or the failure
 * text to answer, counted by reason. A scrape naming one refused info_hash is refused. */
const char *syn_access_check(syn_access *a, const uint8_t *ip, size_t ip_len,
                             const uint8_t (*keys)[20], size_t n);

#endif
