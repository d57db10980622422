/* Helpers for the messages in tracker.proto.
 *
 * A Batch (or BatchReply) is only `repeated <msg> = 1`, whose wire form is the
 * concatenation of (tag 0x0a, varint length, message bytes). So a batch is built by
 * appending each message as it arrives, without keeping the messages themselves, and the
 * receiving side unpacks it with an arena allocator, so a batch of many requests costs no
 * malloc per message. */
#ifndef SYN_PROTO_WIRE_H
#define SYN_PROTO_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

#include "common/arena.h"
#include "common/buf.h"
#include "proto/tracker.pb-c.h"

/* Largest messages accepted from a peer (NNG_OPT_RECVMAXSZ): a node takes batches of
 * requests (small), a router takes batch replies (up to max_batch replies of at most
 * 200 peers each with ids). */
#define SYN_WIRE_MAX_REQUEST (8u * 1024 * 1024)
#define SYN_WIRE_MAX_REPLY (64u * 1024 * 1024)

/* An allocator that carves from `arena`; frees are no-ops. */
ProtobufCAllocator syn_wire_allocator(syn_arena *arena);

/* Appends `msg` as field 1 (length-delimited) to `out`. 0 or -ENOMEM. */
int syn_wire_append_field1(syn_buf *out, const ProtobufCMessage *msg);
/* The same as field `field` (1..15). */
int syn_wire_append_field(syn_buf *out, uint32_t field, const ProtobufCMessage *msg);

/* Appends `len` bytes, already the encoding of a message, as length-delimited field
 * `field` (1..15) to `out`: wraps an encoded body in its envelope without decoding and
 * re-encoding it (e.g. queued SwarmUpdates bytes into a ReplicaRequest). 0 or -ENOMEM. */
int syn_wire_append_bytes_field(syn_buf *out, uint32_t field, const void *body, size_t len);

/* Packs a whole message into `out` (reset first). 0 or -ENOMEM. */
int syn_wire_pack(syn_buf *out, const ProtobufCMessage *msg);

/* Whether a request only touches a few swarms in the swarm store's memory (an announce,
 * a scrape of named info_hashes): it never blocks, so a node in the router's own process
 * may serve it on the router's loop thread (node/node.h syn_node_serve_inline). Shard
 * requests wait on SQLite and faiss, and a full scrape walks every swarm: those go to the
 * node's workers. */
static inline bool syn_wire_request_is_swarm_only(const Synapse__Request *req) {
  return req->body_case == SYNAPSE__REQUEST__BODY_ANNOUNCE ||
         (req->body_case == SYNAPSE__REQUEST__BODY_SCRAPE && req->scrape->n_info_hash > 0);
}

#endif
