/* Call groups. Design notes:
 *
 * - Each part is one syn_req whose data holds the group pointer and the part's tag; the
 *   group keeps the pointers of the parts still out, to cancel them when it completes.
 * - States: open (parts may be added) -> sealed -> done. `done` is set before the
 *   completion callback runs, so a part answering inside it (it cannot: parts are
 *   cancelled first) or a second finish is a no-op.
 * - The group is freed after its completion callback and after its timer has closed
 *   (libuv closes handles asynchronously), whichever comes last. */
#include "router/call_group.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct part_data {
  syn_group *group;
  uint32_t tag;
  uint32_t index; /* in group->out */
  int slot;
} part_data;

struct syn_group {
  syn_nodes *nodes;
  uv_timer_t timer;
  bool has_timer;
  bool sealed, done;
  bool in_callback; /* a part callback is running: completion must not free the group */
  syn_group_part_cb on_part;
  syn_group_done_cb on_done;
  void *ctx;
  syn_req **out; /* parts still out (NULL where one answered) */
  uint32_t out_cap, sent, answered;
};

static void free_group(syn_group *g) {
  free(g->out);
  free(g);
}

static void on_timer_closed(uv_handle_t *h) { free_group(h->data); }

static void release(syn_group *g) {
  if (g->has_timer)
    uv_close((uv_handle_t *)&g->timer, on_timer_closed);
  else
    free_group(g);
}

static void complete(syn_group *g, syn_group_end how) {
  if (g->done) return;
  g->done = true;
  if (g->has_timer) uv_timer_stop(&g->timer);
  for (uint32_t i = 0; i < g->sent; i++) {
    if (!g->out[i]) continue;
    syn_nodes_cancel(g->nodes, g->out[i]);
    g->out[i] = NULL;
  }
  g->on_done(g->ctx, how, g->sent - g->answered);
  if (!g->in_callback) release(g); /* else the part callback's caller releases it */
}

static void on_deadline(uv_timer_t *t) { complete(t->data, SYN_GROUP_TIMED_OUT); }

static void on_part_reply(syn_req *req, const Synapse__Reply *reply) {
  part_data *pd = (part_data *)(void *)req->data;
  syn_group *g = pd->group;
  g->out[pd->index] = NULL; /* this part completes now: never cancel it */
  g->answered++;
  g->in_callback = true;
  bool go_on = g->on_part(g->ctx, pd->tag, pd->slot, reply);
  g->in_callback = false;
  if (g->done) { /* the part callback finished the group */
    release(g);
    return;
  }
  if (!go_on) complete(g, SYN_GROUP_FINISHED);
  else if (g->sealed && g->answered == g->sent) complete(g, SYN_GROUP_ALL_ANSWERED);
}

syn_group *syn_group_new(syn_nodes *nodes, uv_loop_t *loop, uint32_t deadline_ms,
                         syn_group_part_cb on_part, syn_group_done_cb on_done, void *ctx) {
  syn_group *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->nodes = nodes;
  g->on_part = on_part;
  g->on_done = on_done;
  g->ctx = ctx;
  if (deadline_ms) {
    uv_timer_init(loop, &g->timer);
    g->timer.data = g;
    g->has_timer = true;
    uv_timer_start(&g->timer, on_deadline, deadline_ms, 0);
  }
  return g;
}

/* A part's request, registered in the group; NULL when none can be had. */
static syn_req *new_part(syn_group *g, uint32_t tag, int slot) {
  if (g->sealed || g->done) return NULL;
  if (g->sent == g->out_cap) {
    uint32_t cap = g->out_cap ? g->out_cap * 2 : 8;
    syn_req **out = realloc(g->out, cap * sizeof *out);
    if (!out) return NULL;
    g->out = out;
    g->out_cap = cap;
  }
  syn_req *req = syn_nodes_req(g->nodes, on_part_reply, g);
  if (!req) return NULL;
  part_data *pd = (part_data *)(void *)req->data;
  *pd = (part_data){.group = g, .tag = tag, .index = g->sent, .slot = slot};
  return req;
}

static int added(syn_group *g, syn_req *req, int rc) {
  if (rc) return rc; /* the request was released by the send */
  g->out[g->sent++] = req;
  return 0;
}

int syn_group_send_to(syn_group *g, int slot, uint32_t tag, Synapse__Request *msg) {
  syn_req *req = new_part(g, tag, slot);
  if (!req) return -EBUSY;
  return added(g, req, syn_nodes_send_to(g->nodes, req, slot, msg));
}

int syn_group_send(syn_group *g, const uint8_t key[20], uint32_t tag, Synapse__Request *msg) {
  syn_req *req = new_part(g, tag, syn_nodes_route(g->nodes, key));
  if (!req) return -EBUSY;
  return added(g, req, syn_nodes_send(g->nodes, req, key, msg));
}

void syn_group_seal(syn_group *g) {
  if (g->sealed || g->done) return;
  g->sealed = true;
  if (g->answered == g->sent) complete(g, SYN_GROUP_ALL_ANSWERED);
}

void syn_group_finish(syn_group *g) { complete(g, SYN_GROUP_FINISHED); }

uint32_t syn_group_sent(const syn_group *g) { return g->sent; }
uint32_t syn_group_answered(const syn_group *g) { return g->answered; }
