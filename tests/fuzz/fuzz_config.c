/* Fuzz target: the YAML config file through syn_config_load_yaml, then the validation
 * main.c runs on it. The bytes are handed over as a file (an in-memory one, named by
 * /proc/self/fd) so the real loading path runs unchanged. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/config.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (fd < 0) {
    fd = memfd_create("fuzz_config", 0);
    if (fd < 0) abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  }
  if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size) abort();
  syn_config cfg;
  syn_config_defaults(&cfg);
  char err[512];
  if (syn_config_load_yaml(&cfg, path, err, sizeof err) == 0)
    syn_config_validate(&cfg, err, sizeof err);
  syn_config_free(&cfg);
  return 0;
}
