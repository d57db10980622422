/* Request table. Design notes:
 *
 * - Chunks of CHUNK requests, allocated as the table grows and never moved or freed
 *   before the table, so a syn_req pointer is stable; a free list threads through the
 *   unused entries by index.
 * - The generation in the id moves every time an entry is reused, so an id is never
 *   valid twice within 2^32 reuses of one entry. */
#include "router/request.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_SHIFT 12
#define CHUNK (1u << CHUNK_SHIFT)
#define NONE UINT32_MAX

struct syn_req_table {
  syn_req **chunks;
  uint32_t chunk_count, max_chunks;
  uint32_t free_head;
  uint32_t active;
};

static syn_req *entry(const syn_req_table *t, uint32_t index) {
  return &t->chunks[index >> CHUNK_SHIFT][index & (CHUNK - 1)];
}

syn_req_table *syn_req_table_new(uint32_t max) {
  syn_req_table *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->max_chunks = (max + CHUNK - 1) / CHUNK;
  if (t->max_chunks == 0) t->max_chunks = 1;
  t->chunks = calloc(t->max_chunks, sizeof *t->chunks);
  if (!t->chunks) {
    free(t);
    return NULL;
  }
  t->free_head = NONE;
  return t;
}

void syn_req_table_free(syn_req_table *t) {
  if (!t) return;
  for (uint32_t i = 0; i < t->chunk_count; i++) free(t->chunks[i]);
  free(t->chunks);
  free(t);
}

static int grow(syn_req_table *t) {
  if (t->chunk_count == t->max_chunks) return -1;
  syn_req *c = calloc(CHUNK, sizeof *c);
  if (!c) return -1;
  uint32_t base = t->chunk_count << CHUNK_SHIFT;
  for (uint32_t i = 0; i < CHUNK; i++) {
    c[i].next_free = i + 1 < CHUNK ? base + i + 1 : t->free_head;
    c[i].id = (uint64_t)(base + i); /* generation 0 */
  }
  t->chunks[t->chunk_count++] = c;
  t->free_head = base;
  return 0;
}

syn_req *syn_req_start(syn_req_table *t, syn_req_cb cb, void *ctx) {
  if (t->free_head == NONE && grow(t)) return NULL;
  uint32_t index = t->free_head;
  syn_req *r = entry(t, index);
  t->free_head = r->next_free;
  uint32_t generation = (uint32_t)(r->id >> 32) + 1;
  r->id = (uint64_t)generation << 32 | index;
  r->cb = cb;
  r->ctx = ctx;
  r->attempts = 0;
  r->routed = false;
  r->active = true;
  memset(r->data, 0, sizeof r->data);
  t->active++;
  return r;
}

syn_req *syn_req_find(syn_req_table *t, uint64_t id) {
  uint32_t index = (uint32_t)id;
  if ((index >> CHUNK_SHIFT) >= t->chunk_count) return NULL;
  syn_req *r = entry(t, index);
  return r->active && r->id == id ? r : NULL;
}

static void release(syn_req_table *t, syn_req *r) {
  r->active = false;
  r->cb = NULL;
  r->ctx = NULL;
  r->next_free = t->free_head;
  t->free_head = (uint32_t)r->id;
  t->active--;
}

void syn_req_complete(syn_req_table *t, syn_req *req, const Synapse__Reply *reply) {
  syn_req_cb cb = req->cb;
  /* Marked done before the callback, so that nothing the callback does (cancelling
   * a group it belongs to, say) can complete it a second time. */
  req->active = false;
  if (cb) cb(req, reply);
  release(t, req);
}

void syn_req_fail(syn_req_table *t, syn_req *req, Synapse__ErrorCode code, const char *message) {
  Synapse__Reply rep = SYNAPSE__REPLY__INIT;
  rep.id = req->id;
  rep.has_error = 1;
  rep.error = code;
  rep.message = (char *)message;
  syn_req_complete(t, req, &rep);
}

void syn_req_cancel(syn_req_table *t, syn_req *req) {
  if (req->active) release(t, req);
}

size_t syn_req_active(const syn_req_table *t) { return t->active; }
