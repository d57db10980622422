/* Member identity; see identity.h. */
#include "common/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define ID_FILE "node_id"

int syn_peer_url_default(const char *data_url, char *out, size_t out_len) {
  const char *colon = strrchr(data_url, ':');
  if (!strncmp(data_url, "tcp://", 6) && colon && colon > data_url + 6) {
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port >= 65535) return -1;
    int n = snprintf(out, out_len, "%.*s:%ld", (int)(colon - data_url), data_url, port + 1);
    return n > 0 && (size_t)n < out_len ? 0 : -1;
  }
  if (!strncmp(data_url, "tcp://", 6)) return -1;
  int n = snprintf(out, out_len, "%s-peer", data_url);
  return n > 0 && (size_t)n < out_len ? 0 : -1;
}

bool syn_member_id_valid(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > SYN_NODE_ID_MAX) return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] >= 0x7f) return false;
  return true;
}

static void random_id(const char *prefix, char *out, size_t len) {
  unsigned char r[6];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
    unsigned long x = (unsigned long)getpid() ^ (unsigned long)(uintptr_t)out;
    memcpy(r, &x, sizeof r < sizeof x ? sizeof r : sizeof x);
  }
  snprintf(out, len, "%s-%02x%02x%02x%02x%02x%02x", prefix, r[0], r[1], r[2], r[3], r[4], r[5]);
}

/* Reads an id file: 0 (id filled), -ENOENT (none yet), or -EINVAL with a message. */
static int read_id(const char *path, char *id, size_t len, char *err, size_t err_len) {
  FILE *f = fopen(path, "r");
  if (!f) {
    if (errno == ENOENT) return -ENOENT;
    snprintf(err, err_len, "%s: %s", path, strerror(errno));
    return -EINVAL;
  }
  char buf[SYN_NODE_ID_MAX + 8] = "";
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = 0;
  if (!syn_member_id_valid(buf)) {
    snprintf(err, err_len, "%s: not a member id (1-%d printable characters)", path,
             SYN_NODE_ID_MAX);
    return -EINVAL;
  }
  snprintf(id, len, "%s", buf);
  return 0;
}

/* Writes the id durably: a temporary file, fsync, rename, fsync of the directory. */
static int write_id(const char *dir, const char *path, const char *id, char *err,
                    size_t err_len) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  bool ok = fd >= 0;
  if (ok) {
    size_t len = strlen(id);
    ok = write(fd, id, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
  }
  ok = ok && rename(tmp, path) == 0;
  int dfd = ok ? open(dir, O_RDONLY | O_DIRECTORY) : -1;
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  if (!ok) {
    snprintf(err, err_len, "cannot write %s: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

static int replace(char **field, const char *value, char *err, size_t err_len) {
  char *copy = strdup(value);
  if (!copy) {
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  free(*field);
  *field = copy;
  return 0;
}

static int resolve_node_id(syn_config *cfg, bool *generated, char *err, size_t err_len) {
  char path[4096], id[SYN_NODE_ID_MAX + 1];
  snprintf(path, sizeof path, "%s/%s", cfg->data_dir, ID_FILE);
  int rc = read_id(path, id, sizeof id, err, err_len);
  if (rc == -EINVAL) return -1;
  if (rc == -ENOENT) {
    random_id("node", id, sizeof id);
    if (write_id(cfg->data_dir, path, id, err, err_len)) return -1;
    *generated = true;
  }
  return replace(&cfg->node_id, id, err, err_len);
}

int syn_identity_resolve(syn_config *cfg, bool *generated, char *err, size_t err_len) {
  *generated = false;
  if (!cfg->node_id[0]) {
    if (cfg->role == SYN_PROCESS_NODE) {
      if (resolve_node_id(cfg, generated, err, err_len)) return -1;
    } else {
      char id[SYN_NODE_ID_MAX + 1];
      random_id(cfg->role == SYN_PROCESS_ROUTER ? "router" : "standalone", id, sizeof id);
      if (replace(&cfg->node_id, id, err, err_len)) return -1;
    }
  }
  if (!syn_member_id_valid(cfg->node_id)) {
    snprintf(err, err_len, "--node-id: \"%s\" is not 1-%d printable characters without spaces",
             cfg->node_id, SYN_NODE_ID_MAX);
    return -1;
  }
  if (cfg->peer_addr[0] || cfg->role == SYN_PROCESS_STANDALONE) return 0;
  char url[512];
  if (cfg->role == SYN_PROCESS_ROUTER) return replace(&cfg->peer_addr, cfg->cluster_addr, err, err_len);
  if (syn_peer_url_default(cfg->cluster_addr, url, sizeof url)) {
    snprintf(err, err_len, "--cluster-addr: \"%s\" is not a tcp://HOST:PORT URL (or set --peer-addr)",
             cfg->cluster_addr);
    return -1;
  }
  return replace(&cfg->peer_addr, url, err, err_len);
}
