/* Gossip wire: syn_swim_msg <-> proto/cluster.proto (PeerRequest / PeerReply).
 *
 * Decoding is where peer input is checked: a message that does not unpack, has no body,
 * carries a string longer than the bounds of membership.h, an enum out of range or more
 * records than the caller allows is rejected (-EBADMSG) as a whole; the caller drops and
 * counts it. Pure functions; any thread. */
#ifndef SYN_CLUSTER_GOSSIP_WIRE_H
#define SYN_CLUSTER_GOSSIP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/swim.h"
#include "common/buf.h"

enum syn_gossip_kind {
  SYN_GOSSIP_SWIM = 1, /* msg is set */
  SYN_GOSSIP_APP,      /* app / app_len point into the decoded message */
  SYN_GOSSIP_ERROR,    /* reply only: error holds the peer's text */
};

typedef struct syn_gossip_decoded {
  enum syn_gossip_kind kind;
  syn_swim_msg msg;
  const uint8_t *app;
  size_t app_len;
  char error[640];
  char from[SYN_MEMBER_ID_MAX + 1];
  void *pb; /* the unpacked protobuf message, owned */
  int is_reply;
} syn_gossip_decoded;

/* Encodes a SWIM request or reply (by msg->type: ACK and PUSH_PULL replies when
 * `reply` is nonzero). Appends to out. 0 or -ENOMEM / -EINVAL. */
int syn_gossip_encode(const syn_swim_msg *msg, int reply, syn_buf *out);

/* Encodes an app request (reply = 0) or app reply (reply = 1; error non-NULL makes it an
 * error reply). */
int syn_gossip_encode_app(const char *from, const void *data, size_t len, int reply,
                          const char *error, syn_buf *out);

/* Decodes a PeerRequest (reply = 0) or PeerReply (reply = 1), with at most max_records
 * member records. 0 or -EBADMSG / -ENOMEM. On success free with syn_gossip_decoded_free. */
int syn_gossip_decode(const uint8_t *data, size_t len, int reply, size_t max_records,
                      syn_gossip_decoded *out);
void syn_gossip_decoded_free(syn_gossip_decoded *d);

#endif
