/* Conversions between the index's shard records and the Shard message (proto/). Both
 * directions borrow: nothing is copied, so the source must outlive the result. */
#ifndef SYN_NODE_SHARD_PROTO_H
#define SYN_NODE_SHARD_PROTO_H

#include "index/shard_store.h"
#include "proto/tracker.pb-c.h"

/* A registration view of a Shard message; `embedding` is an aligned copy of its vector
 * (or NULL), owned by the caller. Times: created_at carried over when present. */
syn_shard_input syn_shard_input_from_proto(const Synapse__Shard *p, const float *embedding);

/* A Shard message view of a stored record (its embedding only when `s` holds one); the
 * version goes into *version, which the message then points to. */
void syn_shard_to_proto(syn_shard *s, Synapse__Shard *p, Synapse__Version *version);

/* Versions both ways; to_proto borrows v's node string. from_proto: false when the
 * message carries no usable version (absent, or a node id that is not one). */
void syn_version_to_proto(const syn_version *v, Synapse__Version *p);
bool syn_version_from_proto(const Synapse__Version *p, syn_version *v);

/* An aligned copy of the message's vector: NULL without one, or when its length is not
 * the dimension (*bad set), or on ENOMEM (*bad clear). The caller frees it. */
float *syn_shard_embedding_copy(const Synapse__Shard *p, bool *bad);

#endif
