/* Logging to stderr. The macros test the level before evaluating their arguments, so a
 * disabled debug line costs one branch; hot paths count on /metrics instead of logging. */
#ifndef SYN_COMMON_LOG_H
#define SYN_COMMON_LOG_H

enum syn_log_level { SYN_LOG_DEBUG = 0, SYN_LOG_INFO, SYN_LOG_WARN, SYN_LOG_ERROR };

extern int syn_log_threshold;

void syn_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define SYN_LOG(level, ...)                                                                       \
  do {                                                                                            \
    if ((level) >= syn_log_threshold) syn_log_write((level), __VA_ARGS__);                       \
  } while (0)
#define syn_debug(...) SYN_LOG(SYN_LOG_DEBUG, __VA_ARGS__)
#define syn_info(...) SYN_LOG(SYN_LOG_INFO, __VA_ARGS__)
#define syn_warn(...) SYN_LOG(SYN_LOG_WARN, __VA_ARGS__)
#define syn_error(...) SYN_LOG(SYN_LOG_ERROR, __VA_ARGS__)

#endif
