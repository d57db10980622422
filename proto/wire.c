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
  return syn_wire_append_field(out, 1, msg);
}

int syn_wire_append_field(syn_buf *out, uint32_t field, const ProtobufCMessage *msg) {
  size_t size = protobuf_c_message_get_packed_size(msg);
  if (syn_buf_reserve(out, size + 11)) return -ENOMEM;
  uint8_t *p = out->data + out->len;
  size_t n = 0;
  p[n++] = (uint8_t)(field << 3 | 2); /* wire type 2: length-delimited (field 1..15) */
  n += put_varint(p + n, size);
  n += protobuf_c_message_pack(msg, p + n);
  out->len += n;
  return 0;
}

int syn_wire_append_bytes_field(syn_buf *out, uint32_t field, const void *body, size_t len) {
  uint8_t head[11];
  head[0] = (uint8_t)(field << 3 | 2); /* wire type 2: length-delimited */
  size_t n = 1 + put_varint(head + 1, len);
  if (syn_buf_append(out, head, n)) return -ENOMEM;
  return syn_buf_append(out, body, len) ? -ENOMEM : 0;
}

int syn_wire_pack(syn_buf *out, const ProtobufCMessage *msg) {
  syn_buf_reset(out);
  size_t size = protobuf_c_message_get_packed_size(msg);
  if (syn_buf_reserve(out, size + 1)) return -ENOMEM;
  out->len = protobuf_c_message_pack(msg, out->data);
  return 0;
}
