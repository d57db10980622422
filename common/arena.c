#include "common/arena.h"

#include <stdint.h>
#include <stdlib.h>

struct syn_arena_chunk {
  syn_arena_chunk *next;
  size_t size;
  size_t used;
  _Alignas(16) unsigned char data[];
};

void syn_arena_init(syn_arena *a, size_t chunk_size) {
  a->head = NULL;
  a->spare = NULL;
  a->chunk_size = chunk_size ? chunk_size : 64 * 1024;
}

static syn_arena_chunk *chunk_new(size_t size) {
  syn_arena_chunk *c = malloc(sizeof *c + size);
  if (!c) return NULL;
  c->next = NULL;
  c->size = size;
  c->used = 0;
  return c;
}

void *syn_arena_alloc(syn_arena *a, size_t size) {
  size = (size + 15) & ~(size_t)15;
  if (a->head && a->head->size - a->head->used >= size) {
    void *p = a->head->data + a->head->used;
    a->head->used += size;
    return p;
  }
  syn_arena_chunk *c = NULL;
  if (a->spare && a->spare->size >= size) {
    c = a->spare;
    a->spare = NULL;
    c->used = 0;
  } else {
    c = chunk_new(size > a->chunk_size ? size : a->chunk_size);
    if (!c) return NULL;
  }
  c->next = a->head;
  a->head = c;
  c->used = size;
  return c->data;
}

void syn_arena_reset(syn_arena *a) {
  /* Keep the largest chunk for reuse; one chunk is usually enough after warm-up. */
  syn_arena_chunk *keep = a->spare;
  for (syn_arena_chunk *c = a->head, *next; c; c = next) {
    next = c->next;
    if (!keep || c->size > keep->size) {
      free(keep);
      keep = c;
    } else {
      free(c);
    }
  }
  a->head = NULL;
  a->spare = keep;
}

void syn_arena_free(syn_arena *a) {
  syn_arena_reset(a);
  free(a->spare);
  a->spare = NULL;
}
