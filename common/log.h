/* Logging to stderr. The macros test the level before evaluating their arguments, so a
 * disabled debug line costs one branch; hot paths count on /metrics instead of logging
 * (nothing is logged per announce at the default level).
 *
 * Two formats (tracker.log_format, --log-format): text, "<time> <level> <message>", and
 * json, one object per line for a log collector:
 *   {"time":"2026-01-02T03:04:05.678Z","level":"info","component":"node",
 *    "message":"...","request_id":"0x..."}
 * time is RFC 3339 UTC with milliseconds. component is the message's leading "word: "
 * prefix, the way log calls name their component ("node: ...", "replica: ..."), taken out
 * of the message; "main" when there is none. request_id is present only for lines logged
 * with syn_log_req. Strings are escaped for JSON: quotes, backslashes and control
 * characters, and bytes that are not valid UTF-8 become U+FFFD, so every line parses.
 *
 * Thread-safe: one line is written under stderr's lock. Set the threshold and format at
 * start, before other threads run. */
#ifndef SYN_COMMON_LOG_H
#define SYN_COMMON_LOG_H

#include <stddef.h>
#include <stdint.h>

enum syn_log_level { SYN_LOG_DEBUG = 0, SYN_LOG_INFO, SYN_LOG_WARN, SYN_LOG_ERROR };
enum syn_log_format { SYN_LOG_TEXT = 0, SYN_LOG_JSON };

extern int syn_log_threshold;
extern int syn_log_format;

void syn_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with a request id (the router's id: generation << 32 | index); 0 = none. */
void syn_log_write_req(int level, uint64_t request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats one JSON line (with its '\n') into out, truncated to cap - 1 bytes at most but
 * always a complete object when cap >= 256; returns its length. unix_ms is the time.
 * Exposed for the unit test; syn_log_write uses it. */
size_t syn_log_json_line(char *out, size_t cap, int64_t unix_ms, int level, uint64_t request_id,
                         const char *message);

#define SYN_LOG(level, ...)                                                \
  do {                                                                     \
    if ((level) >= syn_log_threshold) syn_log_write((level), __VA_ARGS__); \
  } while (0)
#define syn_debug(...) SYN_LOG(SYN_LOG_DEBUG, __VA_ARGS__)
#define syn_info(...) SYN_LOG(SYN_LOG_INFO, __VA_ARGS__)
#define syn_warn(...) SYN_LOG(SYN_LOG_WARN, __VA_ARGS__)
#define syn_error(...) SYN_LOG(SYN_LOG_ERROR, __VA_ARGS__)
#define syn_log_req(level, request_id, ...)                                                  \
  do {                                                                                       \
    if ((level) >= syn_log_threshold) syn_log_write_req((level), (request_id), __VA_ARGS__); \
  } while (0)

#endif
