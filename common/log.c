#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

int syn_log_threshold = SYN_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void syn_log_write(int level, const char *fmt, ...) {
  char stamp[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  va_list ap;
  va_start(ap, fmt);
  flockfile(stderr);
  fprintf(stderr, "%s %s ", stamp, level_names[level & 3]);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  funlockfile(stderr);
  va_end(ap);
}
