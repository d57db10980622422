#include "node/shard_proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

syn_shard_input syn_shard_input_from_proto(const Synapse__Shard *p, const float *embedding) {
  syn_shard_input in = {
      .info_hash = p->info_hash,
      .display_name = p->display_name,
      .model = p->model,
      .dimension = p->dimension,
      .embedding = embedding,
      .tags = (const char *const *)p->tags,
      .tag_count = p->n_tags,
      .description = p->description,
      .file_size = p->has_file_size ? (int64_t)p->file_size : -1,
      .entry_count = p->has_entry_count ? (int64_t)p->entry_count : -1,
      .metadata_json = p->metadata_json,
      .creator_agent_id = p->creator_agent_id,
      .creator_public_key = p->creator_public_key,
      .signature = p->signature,
      /* Seconds from a peer: beyond what milliseconds can hold it is not a time. */
      .created_at_ms = p->has_created_at && p->created_at > 0 && p->created_at <= INT64_MAX / 1000
                           ? p->created_at * 1000
                           : 0,
  };
  return in;
}

void syn_version_to_proto(const syn_version *v, Synapse__Version *p) {
  synapse__version__init(p);
  p->hlc = v->hlc;
  p->node = (char *)v->node;
}

bool syn_version_from_proto(const Synapse__Version *p, syn_version *v) {
  if (!p || !p->node || strlen(p->node) > SYN_NODE_ID_MAX) return false;
  v->hlc = p->hlc;
  snprintf(v->node, sizeof v->node, "%s", p->node);
  return p->hlc != 0;
}

void syn_shard_to_proto(syn_shard *s, Synapse__Shard *p, Synapse__Version *version) {
  synapse__shard__init(p);
  p->info_hash = s->info_hash;
  p->display_name = s->display_name;
  p->model = s->model;
  p->has_dimension = 1;
  p->dimension = s->dimension;
  p->tags = s->tags;
  p->n_tags = s->tag_count;
  p->description = s->description;
  p->has_file_size = s->file_size >= 0;
  p->file_size = s->file_size >= 0 ? (uint64_t)s->file_size : 0;
  p->has_entry_count = s->entry_count >= 0;
  p->entry_count = s->entry_count >= 0 ? (uint64_t)s->entry_count : 0;
  p->metadata_json = s->metadata_json;
  p->creator_agent_id = s->creator_agent_id;
  p->creator_public_key = s->creator_public_key;
  p->signature = s->signature;
  if (s->embedding) {
    p->has_embedding = 1;
    p->embedding = (ProtobufCBinaryData){(size_t)s->dimension * sizeof(float), (uint8_t *)s->embedding};
  }
  p->has_created_at = p->has_updated_at = 1;
  p->created_at = s->created_at_ms / 1000;
  p->updated_at = s->updated_at_ms / 1000;
  if (version) {
    syn_version_to_proto(&s->version, version);
    p->version = version;
  }
}

float *syn_shard_embedding_copy(const Synapse__Shard *p, bool *bad) {
  *bad = false;
  if (!p->has_embedding) return NULL;
  if (p->embedding.len != (size_t)p->dimension * sizeof(float) || p->embedding.len == 0) {
    *bad = true;
    return NULL;
  }
  float *v = malloc(p->embedding.len); /* protobuf bytes may be unaligned */
  if (v) memcpy(v, p->embedding.data, p->embedding.len);
  return v;
}
