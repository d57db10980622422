/* Access lists. Address ranges are kept as closed intervals [lo, hi] of 128-bit numbers
 * (IPv4 as ::ffff:a.b.c.d), sorted by lo and merged, so no two overlap and a lookup is
 * one binary search for the last interval starting at or below the address. */
#include "router/access.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/keyset.h"
#include "common/shard_rules.h"

#define MAX_LINE 512

typedef unsigned __int128 u128;

typedef struct range {
  u128 lo, hi;
} range;

typedef struct range_list {
  range *v;
  size_t n, cap;
  size_t entries; /* lines loaded (before merging) */
} range_list;

struct syn_access_lists {
  bool configured[SYN_ACCESS_LISTS];
  syn_keyset hashes[2]; /* allow, deny */
  range_list ranges[2]; /* allow, deny */
};

static const char *const kind_names[SYN_ACCESS_LISTS] = {
    "info_hash_allow_file", "info_hash_deny_file", "ip_allow_file", "ip_deny_file"};

/* ---- ranges ---- */

static u128 load_u128(const uint8_t b[16]) {
  u128 v = 0;
  for (int i = 0; i < 16; i++) v = v << 8 | b[i];
  return v;
}

static u128 ip_value(const uint8_t *ip, size_t ip_len) {
  uint8_t m[16] = {0};
  if (ip_len == 4) {
    m[10] = m[11] = 0xff;
    memcpy(m + 12, ip, 4);
  } else {
    memcpy(m, ip, 16);
  }
  return load_u128(m);
}

static int range_push(range_list *l, const syn_cidr *c) {
  if (l->n == l->cap) {
    size_t ncap = l->cap ? l->cap * 2 : 16;
    range *v = realloc(l->v, ncap * sizeof *v);
    if (!v) return -ENOMEM;
    l->v = v;
    l->cap = ncap;
  }
  u128 host = c->prefix == 0 ? ~(u128)0 : ((u128)1 << (128 - c->prefix)) - 1;
  u128 base = load_u128(c->addr) & ~host;
  l->v[l->n++] = (range){base, base | host};
  l->entries++;
  return 0;
}

static int range_cmp(const void *a, const void *b) {
  const range *x = a, *y = b;
  return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void ranges_merge(range_list *l) {
  if (l->n == 0) return;
  qsort(l->v, l->n, sizeof *l->v, range_cmp);
  size_t out = 0;
  for (size_t i = 1; i < l->n; i++) {
    range *last = &l->v[out];
    if (last->hi == ~(u128)0 || l->v[i].lo <= last->hi + 1) {
      if (l->v[i].hi > last->hi) last->hi = l->v[i].hi;
    } else {
      l->v[++out] = l->v[i];
    }
  }
  l->n = out + 1;
}

static bool ranges_contain(const range_list *l, u128 x) {
  size_t lo = 0, hi = l->n; /* find the last range with v[i].lo <= x */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (l->v[mid].lo <= x)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo > 0 && x <= l->v[lo - 1].hi;
}

/* ---- files ---- */

/* The entry of a line: comment cut, white space trimmed; NULL for nothing. */
static char *line_entry(char *line) {
  line[strcspn(line, "#\r\n")] = 0;
  char *s = line + strspn(line, " \t");
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = 0;
  return n ? s : NULL;
}

static int add_entry(syn_access_lists *l, syn_access_list_kind kind, const char *entry,
                     const char **why) {
  if (kind <= SYN_ACCESS_HASH_DENY) {
    char hex[65];
    uint8_t key[20];
    if (syn_info_hash_parse(entry, strlen(entry), hex, key)) {
      *why = "not an info_hash (40 or 64 hexadecimal digits)";
      return -1;
    }
    if (syn_keyset_add(&l->hashes[kind], key) == 0) return 0;
  } else {
    syn_cidr c;
    if (syn_cidr_parse(entry, &c)) {
      *why = "not an address or CIDR (\"192.0.2.0/24\", \"2001:db8::/32\")";
      return -1;
    }
    if (range_push(&l->ranges[kind - SYN_ACCESS_IP_ALLOW], &c) == 0) return 0;
  }
  *why = "out of memory";
  return -1;
}

static int load_file(syn_access_lists *l, syn_access_list_kind kind, const char *path, char *err,
                     size_t err_len) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, err_len, "%s: %s (access.%s)", path, strerror(errno), kind_names[kind]);
    return -1;
  }
  char line[MAX_LINE + 2];
  unsigned lineno = 0;
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    lineno++;
    const char *why = NULL;
    if (!strchr(line, '\n') && !feof(f)) {
      why = "line too long";
    } else {
      char *entry = line_entry(line);
      if (entry) add_entry(l, kind, entry, &why);
    }
    if (why) {
      snprintf(err, err_len, "%s:%u: %s", path, lineno, why);
      rc = -1;
    }
  }
  if (rc == 0 && ferror(f)) {
    snprintf(err, err_len, "%s: read error", path);
    rc = -1;
  }
  fclose(f);
  l->configured[kind] = true;
  return rc;
}

int syn_access_lists_load(const char *const paths[SYN_ACCESS_LISTS], syn_access_lists **out,
                          char *err, size_t err_len) {
  *out = NULL;
  bool any = false;
  for (int k = 0; k < SYN_ACCESS_LISTS; k++) any |= paths[k] && *paths[k];
  if (!any) return 0;
  syn_access_lists *l = calloc(1, sizeof *l);
  if (!l) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  syn_keyset_init(&l->hashes[0]);
  syn_keyset_init(&l->hashes[1]);
  for (int k = 0; k < SYN_ACCESS_LISTS; k++) {
    if (!paths[k] || !*paths[k]) continue;
    if (load_file(l, (syn_access_list_kind)k, paths[k], err, err_len)) {
      syn_access_lists_free(l);
      return -1;
    }
  }
  ranges_merge(&l->ranges[0]);
  ranges_merge(&l->ranges[1]);
  *out = l;
  return 0;
}

void syn_access_lists_free(syn_access_lists *l) {
  if (!l) return;
  for (int i = 0; i < 2; i++) {
    syn_keyset_free(&l->hashes[i]);
    free(l->ranges[i].v);
  }
  free(l);
}

size_t syn_access_lists_size(const syn_access_lists *l, syn_access_list_kind kind) {
  if (!l) return 0;
  if (kind <= SYN_ACCESS_HASH_DENY) return l->hashes[kind].count;
  return l->ranges[kind - SYN_ACCESS_IP_ALLOW].entries;
}

bool syn_access_lists_ip_allowed(const syn_access_lists *l, const uint8_t *ip, size_t ip_len) {
  if (!l || (!l->configured[SYN_ACCESS_IP_ALLOW] && !l->configured[SYN_ACCESS_IP_DENY]))
    return true;
  u128 x = ip_value(ip, ip_len);
  if (l->configured[SYN_ACCESS_IP_DENY] && ranges_contain(&l->ranges[1], x)) return false;
  return !l->configured[SYN_ACCESS_IP_ALLOW] || ranges_contain(&l->ranges[0], x);
}

bool syn_access_lists_hash_allowed(const syn_access_lists *l, const uint8_t key[20]) {
  if (!l) return true;
  if (l->configured[SYN_ACCESS_HASH_DENY] && syn_keyset_contains(&l->hashes[1], key)) return false;
  return !l->configured[SYN_ACCESS_HASH_ALLOW] || syn_keyset_contains(&l->hashes[0], key);
}

/* ---- the router's lists ---- */

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void describe(const syn_access *a, char *msg, size_t msg_len) {
  snprintf(msg, msg_len,
           "access lists loaded: info_hash allow %zu, deny %zu; ip allow %zu, deny %zu",
           syn_access_lists_size(a->lists, SYN_ACCESS_HASH_ALLOW),
           syn_access_lists_size(a->lists, SYN_ACCESS_HASH_DENY),
           syn_access_lists_size(a->lists, SYN_ACCESS_IP_ALLOW),
           syn_access_lists_size(a->lists, SYN_ACCESS_IP_DENY));
}

int syn_access_install(syn_access *a, int rc, syn_access_lists *fresh, const char *err, char *msg,
                       size_t msg_len) {
  a->reloaded_at_ms = wall_ms();
  a->reloads++;
  if (rc) {
    a->last_ok = false;
    a->reload_failures++;
    snprintf(a->last_error, sizeof a->last_error, "%s", err);
    snprintf(msg, msg_len, "%s", err);
    return rc;
  }
  syn_access_lists *old = a->lists;
  a->lists = fresh; /* the swap: readers are on this thread, none holds the old lists */
  syn_access_lists_free(old);
  a->last_ok = true;
  a->last_error[0] = 0;
  describe(a, msg, msg_len);
  return 0;
}

int syn_access_reload(syn_access *a, char *msg, size_t msg_len) {
  syn_access_lists *fresh;
  char err[512] = "";
  int rc = syn_access_lists_load((const char *const *)a->paths, &fresh, err, sizeof err);
  return syn_access_install(a, rc, fresh, err, msg, msg_len);
}

int syn_access_init(syn_access *a, const syn_config *cfg, char *err, size_t err_len) {
  memset(a, 0, sizeof *a);
  for (int k = 0; k < SYN_ACCESS_LISTS; k++) {
    const char *p = cfg->access_files[k];
    if (!p || !*p) continue;
    a->paths[k] = strdup(p);
    if (!a->paths[k]) {
      snprintf(err, err_len, "out of memory");
      return -1;
    }
  }
  char msg[512];
  if (syn_access_reload(a, msg, sizeof msg) == 0) return 0;
  snprintf(err, err_len, "%s", msg);
  return -1;
}

void syn_access_free(syn_access *a) {
  syn_access_lists_free(a->lists);
  for (int k = 0; k < SYN_ACCESS_LISTS; k++) free(a->paths[k]);
  memset(a, 0, sizeof *a);
}

const char *syn_access_check(syn_access *a, const uint8_t *ip, size_t ip_len,
                             const uint8_t (*keys)[20], size_t n) {
  const syn_access_lists *l = a->lists;
  if (!l) return NULL;
  if (!syn_access_lists_ip_allowed(l, ip, ip_len)) {
    a->refused[SYN_REFUSED_IP]++;
    return SYN_ACCESS_IP_DENIED_TEXT;
  }
  for (size_t i = 0; i < n; i++) {
    if (syn_access_lists_hash_allowed(l, keys[i])) continue;
    a->refused[SYN_REFUSED_HASH]++;
    return SYN_ACCESS_HASH_DENIED_TEXT;
  }
  return NULL;
}
