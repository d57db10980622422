/* Logging: text or JSON lines on stderr (see log.h). A line is formatted on the stack
 * (bounded: a message is cut at LINE_MAX_MSG bytes) and written with one fputs under
 * stderr's lock, so lines of different threads never interleave. */
#include "common/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define LINE_MAX_MSG 2048
#define COMPONENT_MAX 24
#define JSON_LINE_MAX (LINE_MAX_MSG * 6 + 512) /* every byte may become \u00XX */

int syn_log_threshold = SYN_LOG_INFO;
int syn_log_format = SYN_LOG_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

typedef struct out_buf {
  char *p;
  size_t len, cap; /* cap excludes the room kept for the closing "}\n" */
} out_buf;

static void put_raw(out_buf *o, const char *s, size_t n) {
  if (o->len + n > o->cap) n = o->cap - o->len;
  memcpy(o->p + o->len, s, n);
  o->len += n;
}

static void put_str(out_buf *o, const char *s) { put_raw(o, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 (overlongs, surrogates and
 * code points past U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len = c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
  if (len == 0 || len > n) return 0;
  for (size_t i = 1; i < len; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
  if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
  if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
  if (c == 0xF4 && s[1] >= 0x90) return 0; /* past U+10FFFF */
  return len;
}

/* Appends `s` (n bytes) as the inside of a JSON string; never cuts an escape in half. */
static void put_escaped(out_buf *o, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    char esc[8];
    const char *rep = esc;
    size_t rl, adv = 1;
    unsigned c = u[i];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      rl = 2;
    } else if (c == '\n' || c == '\t' || c == '\r') {
      esc[0] = '\\';
      esc[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
      rl = 2;
    } else if (c < 0x20 || c == 0x7F) {
      rl = (size_t)snprintf(esc, sizeof esc, "\\u%04x", c);
    } else if (c < 0x80) {
      rep = s + i;
      rl = 1;
    } else if ((adv = utf8_len(u + i, n - i)) != 0) {
      rep = s + i;
      rl = adv;
    } else {
      rep = "\\ufffd"; /* not UTF-8: the replacement character */
      rl = 6;
      adv = 1;
    }
    if (o->len + rl > o->cap) return;
    put_raw(o, rep, rl);
    i += adv;
  }
}

/* The "word: " prefix naming a component, or 0. */
static size_t component_len(const char *m) {
  size_t i = 0;
  while (i < COMPONENT_MAX && ((m[i] >= 'a' && m[i] <= 'z') || (m[i] >= '0' && m[i] <= '9') ||
                               m[i] == '_' || m[i] == '-' || m[i] == '/'))
    i++;
  return i > 0 && m[i] == ':' && m[i + 1] == ' ' ? i : 0;
}

size_t syn_log_json_line(char *out, size_t cap, int64_t unix_ms, int level, uint64_t request_id,
                         const char *message) {
  if (cap < 3) return 0;
  out_buf o = {out, 0, cap - 3}; /* room for "}\n\0" */
  time_t secs = (time_t)(unix_ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char stamp[40];
  size_t sl = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(stamp + sl, sizeof stamp - sl, ".%03dZ", (int)(unix_ms % 1000));
  put_str(&o, "{\"time\":\"");
  put_str(&o, stamp);
  put_str(&o, "\",\"level\":\"");
  put_str(&o, level_names[level & 3]);
  put_str(&o, "\",\"component\":\"");
  size_t cl = component_len(message);
  if (cl) {
    put_raw(&o, message, cl);
    message += cl + 2;
  } else {
    put_str(&o, "main");
  }
  char rid[40] = "";
  if (request_id)
    snprintf(rid, sizeof rid, "\",\"request_id\":\"0x%016llx", (unsigned long long)request_id);
  /* The message gets what the fixed fields leave; the closing fields always fit. */
  size_t tail = strlen(rid) + 1;
  size_t keep = o.cap;
  put_str(&o, "\",\"message\":\"");
  o.cap = o.cap > tail && o.len < o.cap - tail ? o.cap - tail : o.len;
  put_escaped(&o, message, strlen(message));
  o.cap = keep;
  put_str(&o, rid);
  put_str(&o, "\"");
  memcpy(out + o.len, "}\n", 3);
  return o.len + 2;
}

static void write_line(int level, uint64_t request_id, const char *fmt, va_list ap) {
  char msg[LINE_MAX_MSG];
  vsnprintf(msg, sizeof msg, fmt, ap);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (syn_log_format == SYN_LOG_JSON) {
    char line[JSON_LINE_MAX];
    syn_log_json_line(line, sizeof line, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, level,
                      request_id, msg);
    fputs(line, stderr);
    return;
  }
  char stamp[32];
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  flockfile(stderr);
  fprintf(stderr, "%s %s ", stamp, level_names[level & 3]);
  if (request_id) fprintf(stderr, "[0x%016llx] ", (unsigned long long)request_id);
  fputs(msg, stderr);
  fputc('\n', stderr);
  funlockfile(stderr);
}

void syn_log_write(int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  write_line(level, 0, fmt, ap);
  va_end(ap);
}

void syn_log_write_req(int level, uint64_t request_id, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  write_line(level, request_id, fmt, ap);
  va_end(ap);
}
