/* Swarm snapshots: the swarm store written to one file when a node stops and read back when
 * it starts, so a restart does not empty every swarm (warm restart).
 *
 * Format, version 1, all integers little-endian:
 *   header   "SYNSWARM" u32 version u32 flags(0) i64 written_unix_ms          (24 bytes)
 *   swarm    'S' info_hash[20] u32 downloaded i64 last_announce_unix_s       (33 bytes)
 *   peer     '4' ip[4]  port[2 BE] u8 flags(1 = seeder) i64 expiry_unix_s peer_id[20]  (36)
 *            '6' ip[16] ...                                                   (48 bytes)
 *   trailer  'E' u64 swarms u64 peers  BLAKE2b-256 of every byte before it   (49 bytes)
 * A peer belongs to the swarm record before it. Times are absolute wall-clock seconds, so a
 * peer keeps its expiry across the restart (the store runs on a monotonic clock, converted
 * at save and at load); one already expired at load is dropped.
 *
 * Writes go to <path>.tmp, fsynced, renamed over <path>, and the directory fsynced: a crash
 * at any moment leaves the previous snapshot or the new one, never a mix. Both directions are
 * bounded by max_bytes. A file that is truncated, corrupt (checksum), of another version or
 * too big is refused whole: the store is left empty and the caller logs and carries on.
 *
 * Threads: save walks the store one stripe at a time (node/swarm.h visitor: records are
 * copied under the stripe lock, written after it), so it may run while announces go on;
 * load must run before the store serves anyone (on failure it drops everything it holds).
 * Both block on disk I/O: the main thread at start and stop. */
#ifndef SYN_NODE_SWARM_SNAPSHOT_H
#define SYN_NODE_SWARM_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "node/swarm.h"

#define SYN_SNAPSHOT_VERSION 1u
#define SYN_SNAPSHOT_FILE "swarms.snapshot"

typedef struct syn_snapshot_stats {
  uint64_t swarms;     /* swarm records written / read */
  uint64_t peers;      /* peers written / restored */
  uint64_t expired;    /* load: peers dropped because they expired meanwhile */
  uint64_t file_peers; /* load: peers the file holds (what the last save wrote) */
  uint64_t bytes;      /* file size */
  uint64_t elapsed_us;
} syn_snapshot_stats;

/* Clocks: `now` is the store's (seconds, as passed to syn_swarm_announce), `wall_now` unix
 * seconds. peer_timeout must be the store's. 0, or a negative errno (-EFBIG past max_bytes,
 * -EIO and others from the file system) with the reason in err; on failure the previous
 * snapshot, if any, is left in place. */
int syn_swarm_snapshot_save(syn_swarm_store *store, const char *path, uint64_t max_bytes,
                            uint32_t now, int64_t wall_now, uint32_t peer_timeout,
                            syn_snapshot_stats *st, char *err, size_t err_len);

/* 0 when loaded; -ENOENT when there is no file (nothing said in err); -EBADMSG for a
 * refused file, -EFBIG for one over max_bytes, -ENOMEM, -EIO: the reason in err and the
 * store emptied. */
int syn_swarm_snapshot_load(syn_swarm_store *store, const char *path, uint64_t max_bytes,
                            uint32_t now, int64_t wall_now, uint32_t peer_timeout,
                            syn_snapshot_stats *st, char *err, size_t err_len);

#endif
