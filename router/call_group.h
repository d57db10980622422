/* The fan-out primitive: one call made of many parts (a search asks every node, a scrape
 * asks each owner for its hashes, the operations endpoints ask every node for figures).
 *
 * A group has a callback per part, one completion callback, an optional deadline, and an
 * early finish. The completion callback runs exactly once, when the first of these
 * happens: every part has answered (or failed) after the group was sealed; a part
 * callback returned false; the owner called syn_group_finish; the deadline passed. At
 * that moment every part still out is cancelled, so no part callback can run after
 * completion, and nothing can free the owner's state while parts are outstanding: the
 * owner frees its state in the completion callback, and the group frees itself after it.
 *
 * Parts are requests (router/request.h) sent through router/nodes.h: each completes once,
 * with the node's reply or a failure reply (UNAVAILABLE: no answer in time), so a group
 * always completes even without a deadline of its own.
 *
 * Loop thread only. Callbacks never run inside syn_group_send*: the first can run once
 * the loop turns, or inside syn_group_seal / syn_group_finish, after which the group may
 * be gone (the caller must not touch it again). */
#ifndef SYN_ROUTER_CALL_GROUP_H
#define SYN_ROUTER_CALL_GROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "router/nodes.h"

typedef struct syn_group syn_group;

/* One part's reply (valid during the call). `tag` is what the part was sent with. Return
 * true to go on, false to complete the group now. */
typedef bool (*syn_group_part_cb)(void *ctx, uint32_t tag, int slot, const Synapse__Reply *reply);

/* How the group ended. */
typedef enum syn_group_end {
  SYN_GROUP_ALL_ANSWERED, /* every part answered or failed */
  SYN_GROUP_FINISHED,     /* a part callback or the owner ended it early */
  SYN_GROUP_TIMED_OUT,    /* the deadline passed; parts still out were cancelled */
} syn_group_end;

/* Called exactly once; parts_out is how many parts had not answered. */
typedef void (*syn_group_done_cb)(void *ctx, syn_group_end how, uint32_t parts_out);

/* A group with a deadline (0: none of its own; the parts' deadlines still end it). NULL on
 * ENOMEM (nothing was started). */
syn_group *syn_group_new(syn_nodes *nodes, uv_loop_t *loop, uint32_t deadline_ms,
                         syn_group_part_cb on_part, syn_group_done_cb on_done, void *ctx);

/* Sends one part to a node slot, or routed by key (with failover). 0, or a negative
 * errno when the part could not go out (no callback for it will run). Not after seal. */
int syn_group_send_to(syn_group *g, int slot, uint32_t tag, Synapse__Request *msg);
int syn_group_send(syn_group *g, const uint8_t key[20], uint32_t tag, Synapse__Request *msg);

/* No more parts: the group completes when the last part answers, or now if none is out. */
void syn_group_seal(syn_group *g);

/* Completes now (SYN_GROUP_FINISHED), cancelling the parts still out. Not after the
 * completion callback ran; it may be called from a part callback. */
void syn_group_finish(syn_group *g);

/* Parts sent so far and parts answered so far. */
uint32_t syn_group_sent(const syn_group *g);
uint32_t syn_group_answered(const syn_group *g);

#endif
