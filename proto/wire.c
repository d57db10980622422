#include "proto/wire.h"

#include <errno.h>

static void *arena_alloc(void *data, size_t size) { return syn_arena_alloc(data, size); }

static void arena_free(void *data, void *ptr) {
  (void)data;
  (void)ptr;
}

ProtobufCAllocator syn_wire_allocator(syn_arena *arena) {
  ProtobufCAllocator a = {.alloc = arena_alloc, .free = arena_free, .allocator_data = arena};
  return a;
}

static size_t put_varint(uint8_t *out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

int syn_wire_append_field1(syn_buf *out, const ProtobufCMessage *msg) {
  size_t size = protobuf_c_message_get_packed_size(msg);
  if (syn_buf_reserve(out, size + 11)) return -ENOMEM;
  uint8_t *p = out->data + out->len;
  size_t n = 0;
  p[n++] = 0x0a; /* field 1, wire type 2 */
  n += put_varint(p + n, size);
  n += protobuf_c_message_pack(msg, p + n);
  out->len += n;
  return 0;
}
