/* See search_plan.h. */
#include "router/search_plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool bit(const uint8_t *b, uint32_t i) { return b && (b[i / 8] >> (i % 8)) & 1; }
static void set_bit(uint8_t *b, uint32_t i) { b[i / 8] |= (uint8_t)(1u << (i % 8)); }

int syn_search_plan_init(syn_search_plan *p, uint32_t parts) {
  memset(p, 0, sizeof *p);
  p->parts = parts;
  p->bytes = (parts + 7) / 8;
  p->pending = malloc(p->bytes ? p->bytes : 1);
  if (!p->pending) return -ENOMEM;
  memset(p->pending, 0xff, p->bytes);
  if (parts % 8) p->pending[p->bytes - 1] = (uint8_t)((1u << (parts % 8)) - 1);
  return 0;
}

void syn_search_plan_free(syn_search_plan *p) {
  free(p->pending);
  for (int s = 0; s < SYN_PLAN_SLOTS; s++) {
    free(p->asked[s]);
    free(p->round[s]);
  }
  memset(p, 0, sizeof *p);
}

/* The slot's two bitmaps, allocated on first use. */
static bool slot_ready(syn_search_plan *p, int s) {
  if (!p->asked[s]) p->asked[s] = calloc(p->bytes, 1);
  if (!p->round[s]) p->round[s] = calloc(p->bytes, 1);
  return p->asked[s] && p->round[s];
}

static bool in_round(const syn_search_plan *p, int slot) {
  for (size_t i = 0; i < p->round_count; i++)
    if (p->round_slots[i] == slot) return true;
  return false;
}

size_t syn_search_plan_round(syn_search_plan *p, syn_plan_replicas_fn replicas, void *ctx) {
  for (size_t i = 0; i < p->round_count; i++) memset(p->round[p->round_slots[i]], 0, p->bytes);
  p->round_count = 0;
  p->rounds++;
  for (uint32_t part = 0; part < p->parts; part++) {
    if (!bit(p->pending, part)) continue;
    int slots[16];
    size_t n = replicas(ctx, part, slots, sizeof slots / sizeof slots[0]);
    int chosen = -1;
    for (size_t i = 0; i < n && chosen < 0; i++) {
      int s = slots[i];
      if (s >= 0 && s < SYN_PLAN_SLOTS && !bit(p->asked[s], part) && slot_ready(p, s)) chosen = s;
    }
    if (chosen < 0) {
      p->missed++;
      continue;
    }
    if (!in_round(p, chosen)) p->round_slots[p->round_count++] = chosen;
    set_bit(p->asked[chosen], part);
    set_bit(p->round[chosen], part);
  }
  memset(p->pending, 0, p->bytes);
  return p->round_count;
}

void syn_search_plan_unserved(syn_search_plan *p, int slot, const uint8_t *bits, size_t len) {
  if (slot < 0 || slot >= SYN_PLAN_SLOTS || !p->round[slot] || !bits) return;
  size_t n = len < p->bytes ? len : p->bytes;
  for (size_t i = 0; i < n; i++) p->pending[i] |= bits[i] & p->round[slot][i];
}

void syn_search_plan_failed(syn_search_plan *p, int slot) {
  if (slot < 0 || slot >= SYN_PLAN_SLOTS || !p->round[slot]) return;
  for (size_t i = 0; i < p->bytes; i++) p->pending[i] |= p->round[slot][i];
}

uint32_t syn_search_plan_pending_count(const syn_search_plan *p) {
  uint32_t n = 0;
  for (size_t i = 0; i < p->bytes; i++) n += (uint32_t)__builtin_popcount(p->pending[i]);
  return n;
}

bool syn_search_plan_has_pending(const syn_search_plan *p) {
  for (size_t i = 0; i < p->bytes; i++)
    if (p->pending[i]) return true;
  return false;
}
