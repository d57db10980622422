/* A version of a shard record: a hybrid logical clock timestamp (common/hlc.h) and the
 * id of the node that coordinated the write, which breaks ties between two writes made
 * at the same timestamp on two nodes. Register, update and delete all get one; every
 * merge (replication, hand-off, anti-entropy) keeps the record with the greater version,
 * tombstones included (Dynamo-style last-writer-wins with causal timestamps).
 *
 * Pure functions; any thread. */
#ifndef SYN_COMMON_VERSION_H
#define SYN_COMMON_VERSION_H

#include <stdbool.h>
#include <stdint.h>

#include "common/identity.h"

typedef struct syn_version {
  uint64_t hlc;
  char node[SYN_NODE_ID_MAX + 1];
} syn_version;

/* <0, 0, >0 as a is older than, equal to or newer than b. */
int syn_version_cmp(const syn_version *a, const syn_version *b);

/* The record's contribution to its bucket's digest: a 64-bit hash of (info_hash in
 * lower-case hex, version, deleted), so two replicas holding the same versions of the
 * same records, tombstones included, have equal digests (XOR over the bucket). */
uint64_t syn_record_digest(const char *info_hash_hex, const syn_version *v, bool deleted);

/* "hlc.node" for logs and the API (65 + 21 bytes always suffice). */
void syn_version_format(const syn_version *v, char *out, size_t len);

#endif
