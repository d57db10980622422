/* Who this process is in the cluster: its member id and its peer (gossip) address,
 * resolved once at start from the configuration and the data directory.
 *
 * - A node's id defaults to one it generated on its first start and keeps in
 *   <data_dir>/node_id: stable across restarts (its partitions stay its own, design
 *   decision 1) and unique across hosts (random), without depending on host names.
 * - A router's id defaults to a fresh random one: it owns nothing, so nothing needs it
 *   to be stable, and two routers can never clash.
 * - A node's peer address defaults to its cluster address's port + 1, the convention by
 *   which seeds (named by their cluster addresses) are reached; a router's to its
 *   cluster address. */
#ifndef SYN_COMMON_IDENTITY_H
#define SYN_COMMON_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"

#define SYN_NODE_ID_MAX 64 /* bytes of a member id, printable ASCII without spaces */

/* Fills cfg->node_id and cfg->peer_addr where they are empty (replacing the strings).
 * May create <data_dir>/node_id (the data directory must exist). *generated tells
 * whether a new node id was made. 0, or -1 with a message in err (an unreadable or
 * malformed id file, a bad address). Main thread, at start. */
int syn_identity_resolve(syn_config *cfg, bool *generated, char *err, size_t err_len);

/* The default peer URL for a data URL: the same host, the next port
 * (tcp://h:7000 -> tcp://h:7001); other transports get a "-peer" suffix. 0, or -1 for
 * a tcp URL without a usable port. */
int syn_peer_url_default(const char *data_url, char *out, size_t out_len);

/* Whether `id` is a valid member id (1..SYN_NODE_ID_MAX printable bytes, no spaces). */
bool syn_member_id_valid(const char *id);

#endif
