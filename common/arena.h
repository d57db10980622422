/* Bump allocator for short-lived decoding work (protobuf-c unpacking of one batch).
 *
 * Allocations are carved from chunks and released all at once by syn_arena_reset, so
 * unpacking a batch of many requests costs no malloc per message in steady state. Owned
 * by one thread at a time. syn_arena_protobuf gives a ProtobufCAllocator view whose free
 * is a no-op. */
#ifndef SYN_COMMON_ARENA_H
#define SYN_COMMON_ARENA_H

#include <stddef.h>

typedef struct syn_arena_chunk syn_arena_chunk;

typedef struct syn_arena {
  syn_arena_chunk *head; /* chunk being carved */
  syn_arena_chunk *spare; /* released chunks kept for reuse */
  size_t chunk_size;
} syn_arena;

void syn_arena_init(syn_arena *a, size_t chunk_size);
/* NULL on ENOMEM. 16-byte aligned. */
void *syn_arena_alloc(syn_arena *a, size_t size);
/* Forgets every allocation; keeps one chunk of memory for reuse. */
void syn_arena_reset(syn_arena *a);
void syn_arena_free(syn_arena *a);

#endif
