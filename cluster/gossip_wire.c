/* Gossip wire codec. Encoding builds the protobuf structs on the heap for the records
 * (one array of Member structs and one of pointers) and packs them into the caller's
 * buffer; decoding unpacks with the system allocator, checks every bound, then copies
 * into a syn_swim_msg (fixed-size strings), keeping the unpacked message only for the
 * app bytes. */
#include "cluster/gossip_wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cluster.pb-c.h"

typedef Synapse__Cluster__Member pb_member;

/* ---- encoding ---- */

typedef struct records_pb {
  pb_member *items;
  pb_member **ptrs;
  size_t n;
} records_pb;

static int records_to_pb(const syn_swim_msg *msg, bool with_age, records_pb *out) {
  out->n = msg->n_records;
  out->items = calloc(out->n ? out->n : 1, sizeof *out->items);
  out->ptrs = calloc(out->n ? out->n : 1, sizeof *out->ptrs);
  if (!out->items || !out->ptrs) return -ENOMEM;
  for (size_t i = 0; i < out->n; i++) {
    const syn_swim_record *r = &msg->records[i];
    pb_member *m = &out->items[i];
    synapse__cluster__member__init(m);
    m->id = (char *)r->id;
    m->data_url = (char *)r->data_url;
    m->peer_url = (char *)r->peer_url;
    m->role = (Synapse__Cluster__MemberRole)r->role;
    m->state = (Synapse__Cluster__MemberState)r->state;
    m->incarnation = r->incarnation;
    m->has_age_ms = with_age && r->age_ms > 0;
    m->age_ms = r->age_ms;
    m->suspector = r->suspector[0] ? (char *)r->suspector : NULL;
    out->ptrs[i] = m;
  }
  return 0;
}

static void records_free(records_pb *r) {
  free(r->items);
  free(r->ptrs);
}

static int pack(const ProtobufCMessage *m, syn_buf *out) {
  size_t size = protobuf_c_message_get_packed_size(m);
  if (syn_buf_reserve(out, size)) return -ENOMEM;
  out->len += protobuf_c_message_pack(m, out->data + out->len);
  return 0;
}

static int encode_request(const syn_swim_msg *msg, records_pb *rec, syn_buf *out) {
  Synapse__Cluster__PeerRequest req = SYNAPSE__CLUSTER__PEER_REQUEST__INIT;
  Synapse__Cluster__Ping ping = SYNAPSE__CLUSTER__PING__INIT;
  Synapse__Cluster__PingReq ping_req = SYNAPSE__CLUSTER__PING_REQ__INIT;
  Synapse__Cluster__PushPull pp = SYNAPSE__CLUSTER__PUSH_PULL__INIT;
  Synapse__Cluster__Leave leave = SYNAPSE__CLUSTER__LEAVE__INIT;
  Synapse__Cluster__Gossip gossip = SYNAPSE__CLUSTER__GOSSIP__INIT;
  req.from = (char *)msg->from;
  switch (msg->type) {
  case SYN_SWIM_PING:
    ping.seq = msg->seq;
    ping.target_id = msg->target_id[0] ? (char *)msg->target_id : NULL;
    req.body_case = SYNAPSE__CLUSTER__PEER_REQUEST__BODY_PING;
    req.ping = &ping;
    break;
  case SYN_SWIM_PING_REQ:
    ping_req.seq = msg->seq;
    ping_req.target_id = (char *)msg->target_id;
    ping_req.target_url = (char *)msg->target_url;
    req.body_case = SYNAPSE__CLUSTER__PEER_REQUEST__BODY_PING_REQ;
    req.ping_req = &ping_req;
    break;
  case SYN_SWIM_PUSH_PULL:
    pp.has_join = msg->join;
    pp.join = msg->join;
    pp.n_members = rec->n;
    pp.members = rec->ptrs;
    req.body_case = SYNAPSE__CLUSTER__PEER_REQUEST__BODY_PUSH_PULL;
    req.push_pull = &pp;
    return pack(&req.base, out);
  case SYN_SWIM_LEAVE:
    req.body_case = SYNAPSE__CLUSTER__PEER_REQUEST__BODY_LEAVE;
    req.leave = &leave;
    break;
  case SYN_SWIM_GOSSIP:
    req.body_case = SYNAPSE__CLUSTER__PEER_REQUEST__BODY_GOSSIP;
    req.gossip = &gossip;
    break;
  default:
    return -EINVAL;
  }
  req.n_updates = rec->n;
  req.updates = rec->ptrs;
  return pack(&req.base, out);
}

static int encode_reply(const syn_swim_msg *msg, records_pb *rec, syn_buf *out) {
  Synapse__Cluster__PeerReply rep = SYNAPSE__CLUSTER__PEER_REPLY__INIT;
  Synapse__Cluster__Ack ack = SYNAPSE__CLUSTER__ACK__INIT;
  Synapse__Cluster__PushPull pp = SYNAPSE__CLUSTER__PUSH_PULL__INIT;
  rep.from = (char *)msg->from;
  if (msg->type == SYN_SWIM_ACK) {
    ack.seq = msg->seq;
    ack.has_ok = !msg->ok;
    ack.ok = msg->ok;
    rep.body_case = SYNAPSE__CLUSTER__PEER_REPLY__BODY_ACK;
    rep.ack = &ack;
    rep.n_updates = rec->n;
    rep.updates = rec->ptrs;
  } else if (msg->type == SYN_SWIM_PUSH_PULL) {
    pp.n_members = rec->n;
    pp.members = rec->ptrs;
    rep.body_case = SYNAPSE__CLUSTER__PEER_REPLY__BODY_PUSH_PULL;
    rep.push_pull = &pp;
  } else {
    return -EINVAL;
  }
  return pack(&rep.base, out);
}

int syn_gossip_encode(const syn_swim_msg *msg, int reply, syn_buf *out) {
  records_pb rec;
  int rc = records_to_pb(msg, msg->type == SYN_SWIM_PUSH_PULL, &rec);
  if (rc == 0) rc = reply ? encode_reply(msg, &rec, out) : encode_request(msg, &rec, out);
  records_free(&rec);
  return rc;
}

int syn_gossip_encode_app(const char *from, const void *data, size_t len, int reply,
                          const char *error, syn_buf *out) {
  ProtobufCBinaryData bin = {len, (uint8_t *)data};
  if (!reply) {
    Synapse__Cluster__PeerRequest req = SYNAPSE__CLUSTER__PEER_REQUEST__INIT;
    req.from = (char *)from;
    req.body_case = SYNAPSE__CLUSTER__PEER_REQUEST__BODY_APP;
    req.app = bin;
    return pack(&req.base, out);
  }
  Synapse__Cluster__PeerReply rep = SYNAPSE__CLUSTER__PEER_REPLY__INIT;
  rep.from = (char *)from;
  if (error) {
    rep.body_case = SYNAPSE__CLUSTER__PEER_REPLY__BODY_ERROR;
    rep.error = (char *)error;
  } else {
    rep.body_case = SYNAPSE__CLUSTER__PEER_REPLY__BODY_APP;
    rep.app = bin;
  }
  return pack(&rep.base, out);
}

/* ---- decoding ---- */

/* Copies a peer string into dst (cap bytes with the NUL); false when it does not fit. */
static bool take(char *dst, size_t cap, const char *src) {
  if (!src) {
    dst[0] = 0;
    return true;
  }
  size_t n = strnlen(src, cap);
  if (n >= cap) return false;
  memcpy(dst, src, n + 1);
  return true;
}

static int take_records(syn_swim_msg *msg, pb_member *const *in, size_t n, size_t max) {
  if (n > max) return -EBADMSG;
  for (size_t i = 0; i < n; i++) {
    const pb_member *m = in[i];
    syn_swim_record *r = syn_swim_msg_add(msg);
    if (!r) return -ENOMEM;
    if ((unsigned)m->role > SYN_ROLE_ROUTER || (unsigned)m->state > SYN_MEMBER_LEFT ||
        !take(r->id, sizeof r->id, m->id) || !take(r->data_url, sizeof r->data_url, m->data_url) ||
        !take(r->peer_url, sizeof r->peer_url, m->peer_url))
      return -EBADMSG;
    r->role = (uint8_t)m->role;
    r->state = (uint8_t)m->state;
    r->incarnation = m->incarnation;
    r->age_ms = m->has_age_ms ? m->age_ms : 0;
    if (m->suspector && !take(r->suspector, sizeof r->suspector, m->suspector)) return -EBADMSG;
  }
  return 0;
}

static int decode_request(const Synapse__Cluster__PeerRequest *req, size_t max,
                          syn_gossip_decoded *d) {
  syn_swim_msg *msg = &d->msg;
  if (!take(d->from, sizeof d->from, req->from)) return -EBADMSG;
  memcpy(msg->from, d->from, sizeof msg->from);
  d->kind = SYN_GOSSIP_SWIM;
  switch (req->body_case) {
  case SYNAPSE__CLUSTER__PEER_REQUEST__BODY_PING:
    msg->type = SYN_SWIM_PING;
    msg->seq = req->ping->seq;
    if (!take(msg->target_id, sizeof msg->target_id, req->ping->target_id)) return -EBADMSG;
    break;
  case SYNAPSE__CLUSTER__PEER_REQUEST__BODY_PING_REQ:
    msg->type = SYN_SWIM_PING_REQ;
    msg->seq = req->ping_req->seq;
    if (!take(msg->target_id, sizeof msg->target_id, req->ping_req->target_id) ||
        !take(msg->target_url, sizeof msg->target_url, req->ping_req->target_url))
      return -EBADMSG;
    break;
  case SYNAPSE__CLUSTER__PEER_REQUEST__BODY_PUSH_PULL:
    msg->type = SYN_SWIM_PUSH_PULL;
    msg->join = req->push_pull->has_join && req->push_pull->join;
    return take_records(msg, req->push_pull->members, req->push_pull->n_members, max);
  case SYNAPSE__CLUSTER__PEER_REQUEST__BODY_LEAVE:
    msg->type = SYN_SWIM_LEAVE;
    break;
  case SYNAPSE__CLUSTER__PEER_REQUEST__BODY_GOSSIP:
    msg->type = SYN_SWIM_GOSSIP;
    break;
  case SYNAPSE__CLUSTER__PEER_REQUEST__BODY_APP:
    d->kind = SYN_GOSSIP_APP;
    d->app = req->app.data;
    d->app_len = req->app.len;
    return 0;
  default:
    return -EBADMSG;
  }
  return take_records(msg, req->updates, req->n_updates, max);
}

static int decode_reply(const Synapse__Cluster__PeerReply *rep, size_t max,
                        syn_gossip_decoded *d) {
  syn_swim_msg *msg = &d->msg;
  if (!take(d->from, sizeof d->from, rep->from)) return -EBADMSG;
  memcpy(msg->from, d->from, sizeof msg->from);
  d->kind = SYN_GOSSIP_SWIM;
  switch (rep->body_case) {
  case SYNAPSE__CLUSTER__PEER_REPLY__BODY_ACK:
    msg->type = SYN_SWIM_ACK;
    msg->seq = rep->ack->seq;
    msg->ok = !rep->ack->has_ok || rep->ack->ok;
    return take_records(msg, rep->updates, rep->n_updates, max);
  case SYNAPSE__CLUSTER__PEER_REPLY__BODY_PUSH_PULL:
    msg->type = SYN_SWIM_PUSH_PULL;
    return take_records(msg, rep->push_pull->members, rep->push_pull->n_members, max);
  case SYNAPSE__CLUSTER__PEER_REPLY__BODY_APP:
    d->kind = SYN_GOSSIP_APP;
    d->app = rep->app.data;
    d->app_len = rep->app.len;
    return 0;
  case SYNAPSE__CLUSTER__PEER_REPLY__BODY_ERROR:
    d->kind = SYN_GOSSIP_ERROR;
    snprintf(d->error, sizeof d->error, "%s", rep->error ? rep->error : "");
    return 0;
  default:
    return -EBADMSG;
  }
}

int syn_gossip_decode(const uint8_t *data, size_t len, int reply, size_t max_records,
                      syn_gossip_decoded *d) {
  memset(d, 0, sizeof *d);
  d->is_reply = reply;
  int rc;
  if (reply) {
    Synapse__Cluster__PeerReply *rep = synapse__cluster__peer_reply__unpack(NULL, len, data);
    d->pb = rep;
    rc = rep ? decode_reply(rep, max_records, d) : -EBADMSG;
  } else {
    Synapse__Cluster__PeerRequest *req = synapse__cluster__peer_request__unpack(NULL, len, data);
    d->pb = req;
    rc = req ? decode_request(req, max_records, d) : -EBADMSG;
  }
  if (rc) syn_gossip_decoded_free(d);
  return rc;
}

void syn_gossip_decoded_free(syn_gossip_decoded *d) {
  syn_swim_msg_clear(&d->msg);
  if (d->pb) {
    if (d->is_reply)
      synapse__cluster__peer_reply__free_unpacked(d->pb, NULL);
    else
      synapse__cluster__peer_request__free_unpacked(d->pb, NULL);
  }
  d->pb = NULL;
}
