/* The swarm store: design note.
 *
 * Layout. 256 stripes, chosen by the top byte of a keyed 64-bit hash of the info_hash. Each
 * stripe has its own mutex and an open-addressing table (linear probing, backward-shift
 * deletion, no tombstones, load <= 3/4) of {hash, swarm *}. The hash is keyed with random
 * bytes drawn at start-up: an info_hash is chosen by whoever announces it, so using its raw
 * bytes would let a client pile crafted hashes into one probe chain.
 *
 * A swarm holds two peer sets, IPv4 and IPv6. A peer set is one sorted array of packed
 * records while it is small; past BUCKET_MAX peers per bucket it splits into 2^k buckets by a
 * keyed hash of (ip, port), each bucket a sorted array (opentracker does the same). Inserting
 * into a sorted array is a memmove of half the array, so bucketing bounds that memmove at about
 * BUCKET_MAX records (32 KiB) whatever the swarm size; splitting bucket i of 2^k produces
 * buckets i and i + 2^k, so a split is one linear pass that keeps every bucket sorted.
 *
 * Records, network byte order, the first bytes being the compact BEP 23 / BEP 7 form:
 *   IPv4: ip[4] port[2] stamp[4] peer_id[20] = 30 bytes
 *   IPv6: ip[16] port[2] stamp[4] peer_id[20] = 42 bytes
 * The stamp is the last-announce time (31 bits of the store's monotonic seconds: 68 years)
 * with the seeder flag in its top bit, so a peer costs its address, its id and 4 bytes.
 * Arrays grow by 1.125x (+1), so slack averages about 6%, and expire_step gives back memory
 * when an array is less than half used.
 *
 * Expiry. A peer is expired once now - last_seen > peer_timeout. Each swarm knows the earliest
 * time one of its peers can expire (next_expiry); an announce or scrape compacts the swarm when
 * that time has come and its last compaction is at least clean_interval old (peer_timeout/16,
 * 1..60 s), so a big swarm pays one linear pass per interval, not one per announce. Peers
 * expired but not yet compacted still count in the figures for at most clean_interval, and
 * are never handed out. syn_swarm_expire_step walks the tables with a cursor.
 *
 * Peer selection. A random start (per-stripe xorshift64* state, advanced under the stripe
 * lock, so there is no shared PRNG), then consecutive records with wrap-around, skipping the
 * announcer, expired peers, and seeders when the announcer is a seeder. A scan visits at most
 * SCAN_FACTOR * numwant + SCAN_SLACK records per family, so a seeder in a huge swarm of
 * seeders costs a bounded scan; it may then get fewer leechers than exist, which is harmless
 * because leechers are handed the seeders anyway.
 *
 * Counters. Every stripe keeps torrents, peers, seeders and peer_bytes, written only under
 * the stripe lock and read without it (relaxed atomics), so totals are 256 x 4 loads. */
#define _GNU_SOURCE
#include "node/swarm.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/prng.h"

#define STRIPE_BITS 8
#define STRIPES (1u << STRIPE_BITS)
_Static_assert(STRIPES == SYN_SWARM_STRIPES, "stripes as swarm.h says");
#define TABLE_MIN 16u
#define BUCKET_MAX 1024u /* split a peer set when its buckets average more than this */
#define BUCKET_MIN 256u  /* merge buckets again below this average */
#define NB_LOG2_MAX 20
#define SCAN_FACTOR 16u
#define SCAN_SLACK 64u

#define STAMP_SEED 0x80000000u /* the seeder flag, top bit of a record's stamp */
#define STAMP_TIME 0x7fffffffu

enum { V4 = 0, V6 = 1 };
enum { PREV_NEW, PREV_LEECHER, PREV_SEEDER };

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Record geometry by family: address+port length, record size, field offsets. */
ALWAYS_INLINE size_t alen_of(int f) { return f == V4 ? 6 : 18; }
ALWAYS_INLINE size_t rsz_of(int f) { return f == V4 ? SYN_SWARM_RECORD_V4 : SYN_SWARM_RECORD_V6; }
/* The last-announce time that min interval reads is the expiry clock itself: no extra bytes. */
_Static_assert(SYN_SWARM_RECORD_V4 == 6 + 4 + 20 && SYN_SWARM_RECORD_V6 == 18 + 4 + 20,
               "records hold address+port, the stamp and peer_id only");
#define OFF_STAMP(f) (alen_of(f))
#define OFF_ID(f) (alen_of(f) + 4)

typedef struct pvec {
  uint8_t *p;
  uint32_t n, cap;
} pvec;

typedef struct pset {
  union {
    pvec one;   /* nb_log2 == 0 */
    pvec *many; /* nb_log2 > 0: 2^nb_log2 buckets */
  } u;
  uint32_t n, nseed;
  uint8_t nb_log2;
} pset;

typedef struct swarm {
  uint8_t info_hash[20];
  uint32_t downloaded;
  uint32_t last_touch;  /* last announce, for retaining an empty swarm with downloads */
  uint32_t last_clean;  /* last compaction */
  uint32_t next_expiry; /* no peer can be expired before this time */
  pset ps[2];
} swarm;

typedef struct slot {
  uint64_t hash;
  swarm *sw; /* NULL = empty */
} slot;

typedef struct stripe {
  pthread_mutex_t mu;
  slot *tab;
  uint32_t cap, count;
  uint64_t rng;
  /* Written under mu, read by totals without it. */
  _Atomic uint64_t torrents, peers, seeders, peer_bytes;
} __attribute__((aligned(64))) stripe;

struct syn_swarm_store {
  stripe st[STRIPES];
  uint32_t timeout;
  uint32_t clean_interval;
  uint64_t key[5];
  pthread_mutex_t cursor_mu; /* serialises expire_step callers */
  uint32_t cur_stripe, cur_slot;
};

/* ---- small helpers ---- */

ALWAYS_INLINE uint64_t ld64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
ALWAYS_INLINE uint32_t ld32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
ALWAYS_INLINE void st32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
/* A record's last-announce time and seeder flag (see the stamp above). */
ALWAYS_INLINE uint32_t rec_seen(const uint8_t *r, int f) {
  return ld32(r + OFF_STAMP(f)) & STAMP_TIME;
}
ALWAYS_INLINE bool rec_seeder(const uint8_t *r, int f) {
  return (ld32(r + OFF_STAMP(f)) & STAMP_SEED) != 0;
}
ALWAYS_INLINE void rec_stamp(uint8_t *r, int f, uint32_t now, bool seeder) {
  st32(r + OFF_STAMP(f), (now & STAMP_TIME) | (seeder ? STAMP_SEED : 0));
}
ALWAYS_INLINE uint64_t be48(const uint8_t *p) {
  return ((uint64_t)p[0] << 40) | ((uint64_t)p[1] << 32) | ((uint64_t)p[2] << 24) |
         ((uint64_t)p[3] << 16) | ((uint64_t)p[4] << 8) | p[5];
}
ALWAYS_INLINE uint64_t be64(const uint8_t *p) { return __builtin_bswap64(ld64(p)); }

ALWAYS_INLINE uint64_t mum(uint64_t a, uint64_t b) {
  unsigned __int128 r = (unsigned __int128)a * b;
  return (uint64_t)r ^ (uint64_t)(r >> 64);
}

ALWAYS_INLINE void ctr_add(_Atomic uint64_t *c, int64_t d) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint64_t)d,
                        memory_order_relaxed);
}

ALWAYS_INLINE bool expired(uint32_t seen, uint32_t now, uint32_t timeout) {
  return now > seen && now - seen > timeout;
}

ALWAYS_INLINE int addr_cmp(const uint8_t *a, const uint8_t *b, int f) {
  if (f == V4) {
    uint64_t x = be48(a), y = be48(b);
    return (x > y) - (x < y);
  }
  uint64_t x = be64(a), y = be64(b);
  if (x == y) {
    x = be64(a + 8);
    y = be64(b + 8);
  }
  if (x == y) {
    x = ((uint64_t)a[16] << 8) | a[17];
    y = ((uint64_t)b[16] << 8) | b[17];
  }
  return (x > y) - (x < y);
}

static uint64_t ih_hash(const syn_swarm_store *s, const uint8_t *h) {
  return mum(ld64(h) ^ s->key[0], ld64(h + 8) ^ s->key[1]) ^
         mum((uint64_t)ld32(h + 16) ^ s->key[2], s->key[3]);
}

ALWAYS_INLINE uint32_t addr_hash(const syn_swarm_store *s, const uint8_t *a, int f) {
  uint64_t x =
      f == V4 ? be48(a) : ld64(a) ^ mum(ld64(a + 8), ((uint64_t)a[16] << 8 | a[17]) + s->key[2]);
  return (uint32_t)mum(x ^ s->key[4], 0x9E3779B97F4A7C15ULL);
}

ALWAYS_INLINE pvec *bucket_at(pset *ps, uint32_t i) {
  return ps->nb_log2 ? &ps->u.many[i] : &ps->u.one;
}
ALWAYS_INLINE const pvec *cbucket_at(const pset *ps, uint32_t i) {
  return ps->nb_log2 ? &ps->u.many[i] : &ps->u.one;
}
ALWAYS_INLINE uint32_t bucket_of(const syn_swarm_store *s, const pset *ps, const uint8_t *a,
                                 int f) {
  return ps->nb_log2 ? addr_hash(s, a, f) & ((1u << ps->nb_log2) - 1) : 0;
}

/* Index of `a` in v, or its insertion point with *found false. */
ALWAYS_INLINE uint32_t vec_search(const pvec *v, const uint8_t *a, int f, bool *found) {
  uint32_t lo = 0, hi = v->n;
  const size_t rsz = rsz_of(f);
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int c = addr_cmp(v->p + (size_t)mid * rsz, a, f);
    if (c == 0) {
      *found = true;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = false;
  return lo;
}

static size_t vec_cap_for(uint32_t n) { return (size_t)n + n / 8 + 1; }

/* Ensures room for `need` records: grows by 1.125x + 1, or exactly `need` if more. */
static int vec_reserve(stripe *st, pvec *v, int f, uint32_t need) {
  if (need <= v->cap) return 0;
  size_t nc = vec_cap_for(v->cap);
  if (nc < need) nc = need;
  if (nc > UINT32_MAX) return -ENOMEM;
  uint8_t *p = realloc(v->p, nc * rsz_of(f));
  if (!p) return -ENOMEM;
  ctr_add(&st->peer_bytes, (int64_t)((nc - v->cap) * rsz_of(f)));
  v->p = p;
  v->cap = (uint32_t)nc;
  return 0;
}

/* Gives back capacity when less than half of it is used. */
static void vec_trim(stripe *st, pvec *v, int f) {
  if (v->cap <= 2 * (size_t)v->n + 8) return;
  size_t nc = v->n ? vec_cap_for(v->n) : 0;
  if (nc == 0) {
    free(v->p);
    v->p = NULL;
  } else {
    uint8_t *p = realloc(v->p, nc * rsz_of(f));
    if (!p) return;
    v->p = p;
  }
  ctr_add(&st->peer_bytes, -(int64_t)((v->cap - nc) * rsz_of(f)));
  v->cap = (uint32_t)nc;
}

static void vec_free(stripe *st, pvec *v, int f) {
  ctr_add(&st->peer_bytes, -(int64_t)((size_t)v->cap * rsz_of(f)));
  free(v->p);
  v->p = NULL;
  v->n = v->cap = 0;
}

/* ---- peer sets ---- */

static void pset_free(stripe *st, pset *ps, int f) {
  uint32_t nb = 1u << ps->nb_log2;
  for (uint32_t i = 0; i < nb; i++) vec_free(st, bucket_at(ps, i), f);
  if (ps->nb_log2) free(ps->u.many);
  ctr_add(&st->peers, -(int64_t)ps->n);
  ctr_add(&st->seeders, -(int64_t)ps->nseed);
  memset(ps, 0, sizeof *ps);
}

/* Splits every bucket i of 2^k into i and i + 2^k. Fails harmlessly (buckets stay bigger). */
static int pset_split(const syn_swarm_store *s, stripe *st, pset *ps, int f) {
  const size_t rsz = rsz_of(f);
  uint32_t nb = 1u << ps->nb_log2, nb2 = nb * 2, mask = nb2 - 1;
  pvec *nv = calloc(nb2, sizeof *nv);
  if (!nv) return -ENOMEM;
  for (uint32_t i = 0; i < nb; i++) {
    const pvec *o = bucket_at(ps, i);
    for (uint32_t j = 0; j < o->n; j++) nv[addr_hash(s, o->p + j * rsz, f) & mask].cap++;
  }
  for (uint32_t i = 0; i < nb2; i++) {
    nv[i].cap = (uint32_t)vec_cap_for(nv[i].cap);
    nv[i].p = malloc((size_t)nv[i].cap * rsz);
    if (!nv[i].p) {
      for (uint32_t j = 0; j < i; j++) free(nv[j].p);
      free(nv);
      return -ENOMEM;
    }
  }
  int64_t delta = 0;
  for (uint32_t i = 0; i < nb; i++) {
    pvec *o = bucket_at(ps, i);
    for (uint32_t j = 0; j < o->n; j++) {
      const uint8_t *r = o->p + j * rsz;
      pvec *d = &nv[addr_hash(s, r, f) & mask];
      memcpy(d->p + (size_t)d->n++ * rsz, r, rsz);
    }
    delta -= (int64_t)((size_t)o->cap * rsz);
    free(o->p);
  }
  for (uint32_t i = 0; i < nb2; i++) delta += (int64_t)((size_t)nv[i].cap * rsz);
  ctr_add(&st->peer_bytes, delta);
  if (ps->nb_log2) free(ps->u.many);
  ps->u.many = nv;
  ps->nb_log2++;
  return 0;
}

/* Merges buckets i and i + 2^(k-1) back into i: a two-way merge keeps them sorted. */
static int pset_merge(stripe *st, pset *ps, int f) {
  const size_t rsz = rsz_of(f);
  uint32_t half = (1u << ps->nb_log2) / 2;
  pvec *nv = calloc(half, sizeof *nv);
  if (!nv) return -ENOMEM;
  for (uint32_t i = 0; i < half; i++) {
    uint32_t n = ps->u.many[i].n + ps->u.many[i + half].n;
    nv[i].cap = n ? (uint32_t)vec_cap_for(n) : 0;
    nv[i].p = n ? malloc((size_t)nv[i].cap * rsz) : NULL;
    if (n && !nv[i].p) {
      for (uint32_t j = 0; j < i; j++) free(nv[j].p);
      free(nv);
      return -ENOMEM;
    }
  }
  int64_t delta = 0;
  for (uint32_t i = 0; i < half; i++) {
    pvec *a = &ps->u.many[i], *b = &ps->u.many[i + half], *d = &nv[i];
    uint32_t x = 0, y = 0;
    while (x < a->n || y < b->n) {
      const uint8_t *r;
      if (y >= b->n || (x < a->n && addr_cmp(a->p + x * rsz, b->p + y * rsz, f) < 0))
        r = a->p + x++ * rsz;
      else
        r = b->p + y++ * rsz;
      memcpy(d->p + (size_t)d->n++ * rsz, r, rsz);
    }
    delta += (int64_t)((size_t)d->cap * rsz) - (int64_t)(((size_t)a->cap + b->cap) * rsz);
    free(a->p);
    free(b->p);
  }
  ctr_add(&st->peer_bytes, delta);
  free(ps->u.many);
  if (half == 1) {
    ps->u.one = nv[0];
    free(nv);
  } else {
    ps->u.many = nv;
  }
  ps->nb_log2--;
  return 0;
}

/* Inserts or refreshes the peer at `a`; *self points at its record afterwards. */
static int pset_upsert(const syn_swarm_store *s, stripe *st, pset *ps, int f, const uint8_t *a,
                       const uint8_t *peer_id, bool seeder, uint32_t now, int *prev,
                       uint8_t **self) {
  const size_t rsz = rsz_of(f), al = alen_of(f);
  pvec *v = bucket_at(ps, bucket_of(s, ps, a, f));
  bool found;
  uint32_t idx = vec_search(v, a, f, &found);
  uint8_t *r;
  if (found) {
    r = v->p + (size_t)idx * rsz;
    bool was = rec_seeder(r, f);
    *prev = was ? PREV_SEEDER : PREV_LEECHER;
    if (was != seeder) {
      ps->nseed += seeder ? 1 : (uint32_t)-1;
      ctr_add(&st->seeders, seeder ? 1 : -1);
    }
  } else {
    int rc = vec_reserve(st, v, f, v->n + 1);
    if (rc) return rc;
    r = v->p + (size_t)idx * rsz;
    memmove(r + rsz, r, (size_t)(v->n - idx) * rsz);
    v->n++;
    memcpy(r, a, al);
    ps->n++;
    ps->nseed += seeder;
    ctr_add(&st->peers, 1);
    ctr_add(&st->seeders, seeder);
    *prev = PREV_NEW;
  }
  rec_stamp(r, f, now, seeder);
  if (peer_id)
    memcpy(r + OFF_ID(f), peer_id, 20);
  else
    memset(r + OFF_ID(f), 0, 20);
  if (!found && ps->nb_log2 < NB_LOG2_MAX && ps->n > (BUCKET_MAX << ps->nb_log2) &&
      pset_split(s, st, ps, f) == 0) {
    v = bucket_at(ps, bucket_of(s, ps, a, f));
    r = v->p + (size_t)vec_search(v, a, f, &found) * rsz;
  }
  *self = r;
  return 0;
}

/* Removes the peer at `a` if present. */
static void pset_remove(const syn_swarm_store *s, stripe *st, pset *ps, int f, const uint8_t *a) {
  const size_t rsz = rsz_of(f);
  pvec *v = bucket_at(ps, bucket_of(s, ps, a, f));
  bool found;
  uint32_t idx = vec_search(v, a, f, &found);
  if (!found) return;
  uint8_t *r = v->p + (size_t)idx * rsz;
  bool seed = rec_seeder(r, f);
  memmove(r, r + rsz, (size_t)(v->n - idx - 1) * rsz);
  v->n--;
  ps->n--;
  ps->nseed -= seed;
  ctr_add(&st->peers, -1);
  ctr_add(&st->seeders, -(int64_t)seed);
}

/* Drops expired records in one linear pass; returns how many, lowers *min_seen. */
static size_t pset_expire(stripe *st, pset *ps, int f, uint32_t now, uint32_t timeout,
                          uint32_t *min_seen) {
  const size_t rsz = rsz_of(f);
  uint32_t nb = 1u << ps->nb_log2, gone = 0, gone_seed = 0;
  for (uint32_t b = 0; b < nb; b++) {
    pvec *v = bucket_at(ps, b);
    uint32_t w = 0;
    for (uint32_t i = 0; i < v->n; i++) {
      uint8_t *r = v->p + (size_t)i * rsz;
      uint32_t seen = rec_seen(r, f);
      if (expired(seen, now, timeout)) {
        gone++;
        gone_seed += rec_seeder(r, f);
        continue;
      }
      if (seen < *min_seen) *min_seen = seen;
      if (w != i) memcpy(v->p + (size_t)w * rsz, r, rsz);
      w++;
    }
    v->n = w;
  }
  ps->n -= gone;
  ps->nseed -= gone_seed;
  ctr_add(&st->peers, -(int64_t)gone);
  ctr_add(&st->seeders, -(int64_t)gone_seed);
  return gone;
}

static void pset_trim(stripe *st, pset *ps, int f) {
  while (ps->nb_log2 && ps->n < (BUCKET_MIN << ps->nb_log2))
    if (pset_merge(st, ps, f)) break;
  uint32_t nb = 1u << ps->nb_log2;
  for (uint32_t b = 0; b < nb; b++) vec_trim(st, bucket_at(ps, b), f);
}

/* A resumable scan over a peer set: random start, then wrap-around. */
typedef struct scan {
  uint32_t bi, i, visited, max_visit;
  bool started;
} scan;

typedef struct pick_args {
  const uint8_t *self; /* announcer's record, or NULL */
  bool only_leechers;
  uint32_t now, timeout;
  uint8_t *out; /* alen bytes per peer */
  uint8_t *ids; /* 20 bytes per peer, or NULL */
} pick_args;

ALWAYS_INLINE size_t pset_pick(const pset *ps, int f, scan *sc, uint64_t *rng, size_t limit,
                               const pick_args *pa) {
  const size_t rsz = rsz_of(f), al = alen_of(f);
  const uint32_t mask = (1u << ps->nb_log2) - 1;
  size_t got = 0;
  if (ps->n == 0 || limit == 0) return 0;
  if (!sc->started) {
    sc->started = true;
    sc->bi = syn_prng_below(rng, mask + 1);
    const pvec *b = cbucket_at(ps, sc->bi);
    sc->i = b->n ? syn_prng_below(rng, b->n) : 0;
  }
  while (got < limit && sc->visited < ps->n && sc->visited < sc->max_visit) {
    const pvec *b = cbucket_at(ps, sc->bi);
    if (sc->i >= b->n) {
      sc->bi = (sc->bi + 1) & mask;
      sc->i = 0;
      continue;
    }
    const uint8_t *r = b->p + (size_t)sc->i++ * rsz;
    sc->visited++;
    if (r == pa->self) continue;
    if (pa->only_leechers && rec_seeder(r, f)) continue;
    if (expired(rec_seen(r, f), pa->now, pa->timeout)) continue;
    memcpy(pa->out + got * al, r, al);
    if (pa->ids) memcpy(pa->ids + got * 20, r + OFF_ID(f), 20);
    got++;
  }
  return got;
}

/* ---- swarms and stripes ---- */

static swarm *swarm_new(const uint8_t *ih, uint32_t now) {
  swarm *sw = calloc(1, sizeof *sw);
  if (!sw) return NULL;
  memcpy(sw->info_hash, ih, 20);
  sw->last_touch = sw->last_clean = now;
  sw->next_expiry = UINT32_MAX;
  return sw;
}

ALWAYS_INLINE uint32_t swarm_peers(const swarm *sw) { return sw->ps[V4].n + sw->ps[V6].n; }

static void swarm_free(stripe *st, swarm *sw) {
  pset_free(st, &sw->ps[V4], V4);
  pset_free(st, &sw->ps[V6], V6);
  free(sw);
}

static size_t swarm_expire(const syn_swarm_store *s, stripe *st, swarm *sw, uint32_t now) {
  uint32_t min_seen = UINT32_MAX;
  size_t gone = pset_expire(st, &sw->ps[V4], V4, now, s->timeout, &min_seen) +
                pset_expire(st, &sw->ps[V6], V6, now, s->timeout, &min_seen);
  uint64_t next = (uint64_t)min_seen + s->timeout + 1;
  sw->next_expiry = min_seen == UINT32_MAX || next > UINT32_MAX ? UINT32_MAX : (uint32_t)next;
  sw->last_clean = now;
  return gone;
}

static void swarm_clean_if_due(const syn_swarm_store *s, stripe *st, swarm *sw, uint32_t now) {
  if (now >= sw->next_expiry && (now < sw->last_clean || now - sw->last_clean >= s->clean_interval))
    swarm_expire(s, st, sw, now);
}

static void swarm_figures(const swarm *sw, syn_scrape_result *r) {
  r->complete = sw->ps[V4].nseed + sw->ps[V6].nseed;
  r->incomplete = swarm_peers(sw) - r->complete;
  r->downloaded = sw->downloaded;
}

/* An empty swarm is kept only while its downloaded figure is worth reporting. */
static bool swarm_droppable(const syn_swarm_store *s, const swarm *sw, uint32_t now) {
  return swarm_peers(sw) == 0 && (sw->downloaded == 0 || expired(sw->last_touch, now, s->timeout));
}

static uint32_t tab_find(const stripe *st, uint64_t h, const uint8_t *ih) {
  if (!st->cap) return UINT32_MAX;
  uint32_t mask = st->cap - 1;
  for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
    const slot *sl = &st->tab[i];
    if (!sl->sw) return UINT32_MAX;
    if (sl->hash == h && memcmp(sl->sw->info_hash, ih, 20) == 0) return i;
  }
}

static void tab_put(slot *tab, uint32_t cap, uint64_t h, swarm *sw) {
  uint32_t mask = cap - 1, i = (uint32_t)h & mask;
  while (tab[i].sw) i = (i + 1) & mask;
  tab[i].hash = h;
  tab[i].sw = sw;
}

static int tab_resize(stripe *st, uint32_t ncap) {
  slot *nt = calloc(ncap, sizeof *nt);
  if (!nt) return -ENOMEM;
  for (uint32_t i = 0; i < st->cap; i++)
    if (st->tab[i].sw) tab_put(nt, ncap, st->tab[i].hash, st->tab[i].sw);
  free(st->tab);
  st->tab = nt;
  st->cap = ncap;
  return 0;
}

static int tab_insert(stripe *st, uint64_t h, swarm *sw) {
  if (4 * ((size_t)st->count + 1) > 3 * (size_t)st->cap) {
    int rc = tab_resize(st, st->cap ? st->cap * 2 : TABLE_MIN);
    if (rc) return rc;
  }
  tab_put(st->tab, st->cap, h, sw);
  st->count++;
  ctr_add(&st->torrents, 1);
  return 0;
}

/* Backward-shift deletion: later members of the probe chain move up, so no tombstones. */
static void tab_delete(stripe *st, uint32_t i) {
  uint32_t mask = st->cap - 1;
  for (uint32_t j = (i + 1) & mask; st->tab[j].sw; j = (j + 1) & mask) {
    uint32_t home = (uint32_t)st->tab[j].hash & mask;
    /* The entry at j may fill the hole at i unless its home lies cyclically in (i, j]. */
    bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!stays) {
      st->tab[i] = st->tab[j];
      i = j;
    }
  }
  st->tab[i].sw = NULL;
  st->tab[i].hash = 0;
  st->count--;
  ctr_add(&st->torrents, -1);
}

static void drop_swarm(stripe *st, uint32_t slot_i) {
  swarm *sw = st->tab[slot_i].sw;
  tab_delete(st, slot_i);
  swarm_free(st, sw);
}

/* ---- public API ---- */

syn_swarm_store *syn_swarm_store_new(uint32_t peer_timeout) {
  syn_swarm_store *s = aligned_alloc(64, (sizeof *s + 63) & ~(size_t)63);
  if (!s) return NULL;
  memset(s, 0, sizeof *s);
  s->timeout = peer_timeout;
  uint32_t ci = peer_timeout / 16;
  s->clean_interval = ci < 1 ? 1 : ci > 60 ? 60 : ci;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t seed = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ (uintptr_t)s;
  if (getrandom(s->key, sizeof s->key, GRND_NONBLOCK) != (ssize_t)sizeof s->key)
    for (size_t i = 0; i < 5; i++) s->key[i] = mum(seed + i, 0x9E3779B97F4A7C15ULL) | 1;
  for (uint32_t i = 0; i < STRIPES; i++) {
    if (pthread_mutex_init(&s->st[i].mu, NULL)) {
      while (i--) pthread_mutex_destroy(&s->st[i].mu);
      free(s);
      return NULL;
    }
    s->st[i].rng = mum(seed ^ s->key[4], i + 0x9E3779B97F4A7C15ULL) | 1;
  }
  pthread_mutex_init(&s->cursor_mu, NULL);
  return s;
}

void syn_swarm_store_free(syn_swarm_store *s) {
  if (!s) return;
  for (uint32_t i = 0; i < STRIPES; i++) {
    stripe *st = &s->st[i];
    for (uint32_t j = 0; j < st->cap; j++)
      if (st->tab[j].sw) swarm_free(st, st->tab[j].sw);
    free(st->tab);
    pthread_mutex_destroy(&st->mu);
  }
  pthread_mutex_destroy(&s->cursor_mu);
  free(s);
}

uint32_t syn_swarm_peer_timeout(const syn_swarm_store *s) { return s->timeout; }

/* Fills out->peers4/6 sharing numwant between the families; see swarm.h. */
static void select_peers(swarm *sw, int fam, const uint8_t *self, bool seeder, uint64_t *rng,
                         const syn_announce *req, uint32_t now, uint32_t timeout,
                         syn_announce_result *out) {
  bool w4 = (req->families & SYN_FAMILY_V4) && out->peers4;
  bool w6 = (req->families & SYN_FAMILY_V6) && out->peers6;
  size_t want = req->numwant;
  if (!want || (!w4 && !w6)) return;
  pick_args a4 = {self,    seeder,      now,
                  timeout, out->peers4, req->want_peer_ids ? out->peer_ids4 : NULL};
  pick_args a6 = {self,    seeder,      now,
                  timeout, out->peers6, req->want_peer_ids ? out->peer_ids6 : NULL};
  uint32_t maxv =
      want > UINT32_MAX / SCAN_FACTOR ? UINT32_MAX : (uint32_t)want * SCAN_FACTOR + SCAN_SLACK;
  scan s4 = {.max_visit = maxv}, s6 = {.max_visit = maxv};
  /* Candidates per family (approximate: expired records are not known until scanned). */
  uint64_t e[2];
  for (int f = V4; f <= V6; f++) {
    const pset *ps = &sw->ps[f];
    e[f] = seeder ? ps->n - ps->nseed : ps->n - (f == fam);
  }
  size_t q4 = w4 ? want : 0;
  if (w4 && w6) q4 = e[V4] + e[V6] ? (want * e[V4] + (e[V4] + e[V6]) / 2) / (e[V4] + e[V6]) : want;
  size_t g4 = w4 ? pset_pick(&sw->ps[V4], V4, &s4, rng, q4, &a4) : 0;
  size_t g6 = 0;
  if (w6) g6 = pset_pick(&sw->ps[V6], V6, &s6, rng, want - g4, &a6);
  if (w4 && g4 + g6 < want) {
    a4.out = out->peers4 + g4 * 6;
    if (a4.ids) a4.ids += g4 * 20;
    g4 += pset_pick(&sw->ps[V4], V4, &s4, rng, want - g4 - g6, &a4);
  }
  out->peers4_count = g4;
  out->peers6_count = g6;
}

/* The store's key for (ip, port): the record's leading bytes, and the family. -EINVAL for a
 * bad address length. ::ffff:a.b.c.d from a dual-stack socket is an IPv4 peer. */
static int addr_key(const uint8_t *ip, size_t ip_len, uint16_t port, uint8_t a[18], int *fam) {
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!ip) return -EINVAL;
  if (ip_len == 4) {
    *fam = V4;
    memcpy(a, ip, 4);
  } else if (ip_len == 16 && memcmp(ip, mapped, 12) == 0) {
    *fam = V4;
    memcpy(a, ip + 12, 4);
  } else if (ip_len == 16) {
    *fam = V6;
    memcpy(a, ip, 16);
  } else {
    return -EINVAL;
  }
  size_t al = alen_of(*fam);
  a[al - 2] = (uint8_t)(port >> 8);
  a[al - 1] = (uint8_t)port;
  return 0;
}

/* The record at `a`, or NULL. */
static uint8_t *pset_find(const syn_swarm_store *s, pset *ps, int f, const uint8_t *a) {
  pvec *v = bucket_at(ps, bucket_of(s, ps, a, f));
  bool found;
  uint32_t idx = vec_search(v, a, f, &found);
  return found ? v->p + (size_t)idx * rsz_of(f) : NULL;
}

/* The announcer's record when this announce comes too early to be applied: a re-announce
 * (no event, or started again) less than min_interval after the last one applied.
 * completed and stopped are always applied (see swarm.h). */
static uint8_t *early_record(const syn_swarm_store *s, swarm *sw, int fam, const uint8_t *a,
                             const syn_announce *req, uint32_t now) {
  if (!req->min_interval || (req->event != SYN_EVENT_NONE && req->event != SYN_EVENT_STARTED))
    return NULL;
  uint8_t *r = pset_find(s, &sw->ps[fam], fam, a);
  if (!r) return NULL;
  uint32_t seen = rec_seen(r, fam);
  return now >= seen && now - seen < req->min_interval ? r : NULL;
}

int syn_swarm_announce(syn_swarm_store *s, const syn_announce *req, uint32_t now,
                       syn_announce_result *out) {
  out->complete = out->incomplete = out->downloaded = 0;
  out->peers4_count = out->peers6_count = 0;
  out->early = false;
  if (!req || !req->info_hash) return -EINVAL;
  uint8_t a[18];
  int fam;
  if (addr_key(req->ip, req->ip_len, req->port, a, &fam)) return -EINVAL;
  bool stopped = req->event == SYN_EVENT_STOPPED, seeder = req->left == 0;

  uint64_t h = ih_hash(s, req->info_hash);
  stripe *st = &s->st[h >> (64 - STRIPE_BITS)];
  int rc = 0;
  pthread_mutex_lock(&st->mu);
  uint32_t si = tab_find(st, h, req->info_hash);
  swarm *sw = si == UINT32_MAX ? NULL : st->tab[si].sw;
  uint8_t *early = sw ? early_record(s, sw, fam, a, req, now) : NULL;
  if (early) {
    /* Nothing changes: not the record, not the swarm's clocks, not a compaction. */
    out->early = true;
    select_peers(sw, fam, early, rec_seeder(early, fam), &st->rng, req, now, s->timeout, out);
    goto figures;
  }
  if (!sw) {
    if (stopped) goto out;
    sw = swarm_new(req->info_hash, now);
    if (!sw || tab_insert(st, h, sw)) {
      free(sw);
      rc = -ENOMEM;
      goto out;
    }
  }
  swarm_clean_if_due(s, st, sw, now);
  sw->last_touch = now;
  if (stopped) {
    pset_remove(s, st, &sw->ps[fam], fam, a);
  } else {
    int prev;
    uint8_t *self;
    rc = pset_upsert(s, st, &sw->ps[fam], fam, a, req->peer_id, seeder, now, &prev, &self);
    if (rc == 0) {
      if (req->event == SYN_EVENT_COMPLETED && seeder && prev != PREV_SEEDER) sw->downloaded++;
      if (now + (uint64_t)s->timeout + 1 < sw->next_expiry) sw->next_expiry = now + s->timeout + 1;
      select_peers(sw, fam, self, seeder, &st->rng, req, now, s->timeout, out);
    }
  }
figures:;
  syn_scrape_result fig;
  swarm_figures(sw, &fig);
  out->complete = fig.complete;
  out->incomplete = fig.incomplete;
  out->downloaded = fig.downloaded;
  /* Table inserts may have moved the slot, so it is looked up again. */
  if (swarm_peers(sw) == 0 && sw->downloaded == 0) drop_swarm(st, tab_find(st, h, req->info_hash));
out:
  pthread_mutex_unlock(&st->mu);
  return rc;
}

size_t syn_swarm_visit_stripe(syn_swarm_store *s, uint32_t k, const syn_swarm_visitor *vis,
                              uint32_t now) {
  if (k >= STRIPES) return 0;
  size_t emitted = 0;
  stripe *st = &s->st[k];
  pthread_mutex_lock(&st->mu);
  for (uint32_t i = 0; i < st->cap; i++) {
    const swarm *sw = st->tab[i].sw;
    if (!sw || (vis->want && !vis->want(vis->ctx, sw->info_hash))) continue;
    if (vis->swarm) vis->swarm(vis->ctx, sw->info_hash, sw->downloaded, sw->last_touch);
    for (int f = V4; f <= V6; f++) {
      const pset *ps = &sw->ps[f];
      const size_t rsz = rsz_of(f), al = alen_of(f);
      uint32_t buckets = ps->nb_log2 ? 1u << ps->nb_log2 : 1;
      for (uint32_t b = 0; b < buckets; b++) {
        const pvec *v = cbucket_at(ps, b);
        for (uint32_t j = 0; j < v->n; j++) {
          const uint8_t *r = v->p + (size_t)j * rsz;
          uint32_t seen = rec_seen(r, f);
          if (expired(seen, now, s->timeout)) continue;
          syn_swarm_peer_rec p = {.ip = r,
                                  .ip_len = al - 2,
                                  .port = (uint16_t)(r[al - 2] << 8 | r[al - 1]),
                                  .peer_id = r + OFF_ID(f),
                                  .seeder = rec_seeder(r, f),
                                  .last_seen = seen};
          vis->peer(vis->ctx, sw->info_hash, &p);
          emitted++;
        }
      }
    }
  }
  pthread_mutex_unlock(&st->mu);
  return emitted;
}

/* syn_swarm_export_stripe over the visitor: one walker for hand-off and snapshots. */
typedef struct export_adapter {
  bool (*want)(void *ctx, const uint8_t info_hash[20]);
  syn_swarm_export_fn emit;
  void *ctx;
} export_adapter;

static bool export_want(void *ctx, const uint8_t info_hash[20]) {
  const export_adapter *ad = ctx;
  return ad->want(ad->ctx, info_hash);
}

static void export_peer(void *ctx, const uint8_t info_hash[20], const syn_swarm_peer_rec *p) {
  const export_adapter *ad = ctx;
  ad->emit(ad->ctx, info_hash, p->ip, p->ip_len, p->port, p->peer_id, p->seeder);
}

size_t syn_swarm_export_stripe(syn_swarm_store *s, uint32_t k,
                               bool (*want)(void *ctx, const uint8_t info_hash[20]),
                               syn_swarm_export_fn emit, void *ctx, uint32_t now) {
  export_adapter ad = {want, emit, ctx};
  syn_swarm_visitor vis = {.want = export_want, .peer = export_peer, .ctx = &ad};
  return syn_swarm_visit_stripe(s, k, &vis, now);
}

/* Finds or creates the swarm of `ih` for a restore; NULL on ENOMEM. */
static swarm *restore_target(stripe *st, uint64_t h, const uint8_t ih[20], uint32_t now) {
  uint32_t si = tab_find(st, h, ih);
  if (si != UINT32_MAX) return st->tab[si].sw;
  swarm *sw = swarm_new(ih, now);
  if (!sw || tab_insert(st, h, sw)) {
    free(sw);
    return NULL;
  }
  sw->last_touch = 0; /* raised by what is restored */
  return sw;
}

int syn_swarm_restore_swarm(syn_swarm_store *s, const uint8_t info_hash[20], uint32_t downloaded,
                            uint32_t last_touch, uint32_t now) {
  if (downloaded == 0) return 0; /* its peers, if any, bring it back */
  if (last_touch > now) last_touch = now;
  uint64_t h = ih_hash(s, info_hash);
  stripe *st = &s->st[h >> (64 - STRIPE_BITS)];
  pthread_mutex_lock(&st->mu);
  swarm *sw = restore_target(st, h, info_hash, now);
  if (sw) {
    if (downloaded > sw->downloaded) sw->downloaded = downloaded;
    if (last_touch > sw->last_touch) sw->last_touch = last_touch;
  }
  pthread_mutex_unlock(&st->mu);
  return sw ? 0 : -ENOMEM;
}

int syn_swarm_restore_peer(syn_swarm_store *s, const uint8_t info_hash[20],
                           const syn_swarm_peer_rec *p, uint32_t now) {
  uint8_t a[18];
  int fam;
  if (!info_hash || !p || addr_key(p->ip, p->ip_len, p->port, a, &fam)) return -EINVAL;
  uint32_t seen = p->last_seen > now ? now : p->last_seen;
  if (expired(seen, now, s->timeout)) return 0;
  uint64_t h = ih_hash(s, info_hash);
  stripe *st = &s->st[h >> (64 - STRIPE_BITS)];
  int rc = 1;
  pthread_mutex_lock(&st->mu);
  swarm *sw = restore_target(st, h, info_hash, now);
  if (!sw) {
    rc = -ENOMEM;
  } else {
    const uint8_t *known = pset_find(s, &sw->ps[fam], fam, a);
    if (known && rec_seen(known, fam) >= (seen & STAMP_TIME)) {
      rc = 0; /* what the store has is newer */
    } else {
      int prev;
      uint8_t *self;
      rc = pset_upsert(s, st, &sw->ps[fam], fam, a, p->peer_id, p->seeder, seen, &prev, &self);
      if (rc == 0) {
        rc = 1;
        if (seen + (uint64_t)s->timeout + 1 < sw->next_expiry)
          sw->next_expiry = seen + s->timeout + 1;
        if (seen > sw->last_touch) sw->last_touch = seen;
      }
    }
    if (swarm_peers(sw) == 0 && sw->downloaded == 0) drop_swarm(st, tab_find(st, h, info_hash));
  }
  pthread_mutex_unlock(&st->mu);
  return rc;
}

size_t syn_swarm_export(syn_swarm_store *s, bool (*want)(void *ctx, const uint8_t info_hash[20]),
                        syn_swarm_export_fn emit, void *ctx, uint32_t now) {
  size_t emitted = 0;
  for (uint32_t k = 0; k < STRIPES; k++)
    emitted += syn_swarm_export_stripe(s, k, want, emit, ctx, now);
  return emitted;
}

size_t syn_swarm_drop(syn_swarm_store *s, bool (*want)(void *ctx, const uint8_t info_hash[20]),
                      void *ctx) {
  size_t dropped = 0;
  for (uint32_t k = 0; k < STRIPES; k++) {
    stripe *st = &s->st[k];
    pthread_mutex_lock(&st->mu);
    /* Collect first: deletion shifts table entries, so no deleting while scanning. */
    uint8_t(*doomed)[20] = st->count ? malloc(st->count * sizeof *doomed) : NULL;
    size_t n = 0;
    for (uint32_t i = 0; doomed && i < st->cap; i++)
      if (st->tab[i].sw && want(ctx, st->tab[i].sw->info_hash))
        memcpy(doomed[n++], st->tab[i].sw->info_hash, 20);
    for (size_t j = 0; j < n; j++) {
      uint32_t slot_i = tab_find(st, ih_hash(s, doomed[j]), doomed[j]);
      if (slot_i == UINT32_MAX) continue;
      drop_swarm(st, slot_i);
      dropped++;
    }
    pthread_mutex_unlock(&st->mu);
    free(doomed);
  }
  return dropped;
}

int syn_swarm_peers(syn_swarm_store *s, const uint8_t info_hash[20], uint32_t now, uint32_t max,
                    syn_announce_result *out) {
  out->complete = out->incomplete = out->downloaded = 0;
  out->peers4_count = out->peers6_count = 0;
  uint64_t h = ih_hash(s, info_hash);
  stripe *st = &s->st[h >> (64 - STRIPE_BITS)];
  pthread_mutex_lock(&st->mu);
  uint32_t si = tab_find(st, h, info_hash);
  if (si != UINT32_MAX) {
    swarm *sw = st->tab[si].sw;
    swarm_clean_if_due(s, st, sw, now);
    syn_announce req = {.numwant = max, .families = SYN_FAMILY_V4 | SYN_FAMILY_V6};
    select_peers(sw, V4, NULL, false, &st->rng, &req, now, s->timeout, out);
    syn_scrape_result fig;
    swarm_figures(sw, &fig);
    out->complete = fig.complete;
    out->incomplete = fig.incomplete;
    out->downloaded = fig.downloaded;
  }
  pthread_mutex_unlock(&st->mu);
  return si == UINT32_MAX ? -ENOENT : 0;
}

void syn_swarm_scrape(syn_swarm_store *s, const uint8_t info_hash[20], uint32_t now,
                      syn_scrape_result *out) {
  memset(out, 0, sizeof *out);
  uint64_t h = ih_hash(s, info_hash);
  stripe *st = &s->st[h >> (64 - STRIPE_BITS)];
  pthread_mutex_lock(&st->mu);
  uint32_t i = tab_find(st, h, info_hash);
  if (i != UINT32_MAX) {
    swarm_clean_if_due(s, st, st->tab[i].sw, now);
    swarm_figures(st->tab[i].sw, out);
  }
  pthread_mutex_unlock(&st->mu);
}

typedef struct fe_item {
  uint8_t ih[20];
  syn_scrape_result r;
} fe_item;

size_t syn_swarm_foreach(syn_swarm_store *s, size_t max,
                         void (*fn)(void *ctx, const uint8_t info_hash[20],
                                    const syn_scrape_result *r),
                         void *ctx) {
  fe_item *buf = NULL;
  size_t bufcap = 0, visited = 0;
  for (uint32_t k = 0; k < STRIPES && visited < max && fn; k++) {
    stripe *st = &s->st[k];
    pthread_mutex_lock(&st->mu);
    size_t need = st->count < max - visited ? st->count : max - visited;
    if (need > bufcap) {
      /* Allocate outside the lock, then look again: the stripe may have changed. */
      pthread_mutex_unlock(&st->mu);
      fe_item *nb = realloc(buf, (need + need / 2) * sizeof *nb);
      if (!nb) break;
      buf = nb;
      bufcap = need + need / 2;
      k--;
      continue;
    }
    size_t got = 0;
    for (uint32_t i = 0; i < st->cap && got < need; i++) {
      const swarm *sw = st->tab[i].sw;
      if (!sw) continue;
      memcpy(buf[got].ih, sw->info_hash, 20);
      swarm_figures(sw, &buf[got].r);
      got++;
    }
    pthread_mutex_unlock(&st->mu);
    /* Callbacks run without the lock, so fn may call back into the store. */
    for (size_t i = 0; i < got; i++) fn(ctx, buf[i].ih, &buf[i].r);
    visited += got;
  }
  free(buf);
  return visited;
}

size_t syn_swarm_expire_step(syn_swarm_store *s, uint32_t now, size_t budget) {
  size_t visited = 0, removed = 0;
  pthread_mutex_lock(&s->cursor_mu);
  uint32_t k = s->cur_stripe, i = s->cur_slot;
  /* At most one round: all stripes, plus the start of the first if we resumed mid-way. */
  const uint32_t rounds = STRIPES + (i > 0);
  for (uint32_t passes = 0; visited < budget && passes < rounds;) {
    stripe *st = &s->st[k];
    pthread_mutex_lock(&st->mu);
    while (i < st->cap && visited < budget) {
      swarm *sw = st->tab[i].sw;
      if (!sw) {
        i++;
        continue;
      }
      visited++;
      removed += swarm_expire(s, st, sw, now);
      if (swarm_droppable(s, sw, now)) {
        drop_swarm(st, i); /* a later entry may have shifted into slot i: look again */
        continue;
      }
      pset_trim(st, &sw->ps[V4], V4);
      pset_trim(st, &sw->ps[V6], V6);
      i++;
    }
    if (i >= st->cap) {
      if (st->cap > TABLE_MIN && (size_t)st->count * 8 < st->cap) tab_resize(st, st->cap / 2);
      k = (k + 1) % STRIPES;
      i = 0;
      passes++;
    }
    pthread_mutex_unlock(&st->mu);
  }
  s->cur_stripe = k;
  s->cur_slot = i;
  pthread_mutex_unlock(&s->cursor_mu);
  return removed;
}

void syn_swarm_totals_get(syn_swarm_store *s, syn_swarm_totals *out) {
  memset(out, 0, sizeof *out);
  for (uint32_t i = 0; i < STRIPES; i++) {
    const stripe *st = &s->st[i];
    out->torrents += atomic_load_explicit(&st->torrents, memory_order_relaxed);
    out->peers += atomic_load_explicit(&st->peers, memory_order_relaxed);
    out->seeders += atomic_load_explicit(&st->seeders, memory_order_relaxed);
    out->peer_bytes += atomic_load_explicit(&st->peer_bytes, memory_order_relaxed);
  }
}
