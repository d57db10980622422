/* The request table: ids carry generations, a request completes exactly once, a
 * cancelled request never completes, late replies find nothing, entries never move. */
/* cmocka needs these before it, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "router/request.h"

#include <stdlib.h>
#include <string.h>

typedef struct seen {
  int calls;
  uint64_t last_id;
  Synapse__ErrorCode last_error;
} seen;

static void on_done(syn_req *req, const Synapse__Reply *reply) {
  seen *s = req->ctx;
  s->calls++;
  s->last_id = reply->id;
  s->last_error = reply->has_error ? reply->error : SYNAPSE__ERROR_CODE__OK;
}

static Synapse__Reply reply_for(uint64_t id) {
  Synapse__Reply r = SYNAPSE__REPLY__INIT;
  r.id = id;
  return r;
}

static void test_complete_once(void **state) {
  (void)state;
  syn_req_table *t = syn_req_table_new(16);
  seen s = {0};
  syn_req *r = syn_req_start(t, on_done, &s);
  assert_non_null(r);
  uint64_t id = r->id;
  assert_ptr_equal(syn_req_find(t, id), r);
  Synapse__Reply rep = reply_for(id);
  syn_req_complete(t, r, &rep);
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.last_id, id);
  /* A duplicate or late reply finds nothing. */
  assert_null(syn_req_find(t, id));
  assert_int_equal(syn_req_active(t), 0);
  syn_req_table_free(t);
}

static void test_generations(void **state) {
  (void)state;
  syn_req_table *t = syn_req_table_new(1);
  seen s = {0};
  syn_req *r = syn_req_start(t, on_done, &s);
  uint64_t first = r->id;
  syn_req_cancel(t, r);
  assert_int_equal(s.calls, 0); /* cancelled: no callback, ever */
  syn_req *again = syn_req_start(t, on_done, &s);
  assert_ptr_equal(again, r);             /* the same entry ... */
  assert_int_not_equal(again->id, first); /* ... under a new generation */
  assert_int_equal((uint32_t)again->id, (uint32_t)first);
  assert_null(syn_req_find(t, first)); /* the old id names nothing */
  assert_ptr_equal(syn_req_find(t, again->id), again);
  syn_req_fail(t, again, SYNAPSE__ERROR_CODE__UNAVAILABLE, "gone");
  assert_int_equal(s.calls, 1);
  assert_int_equal(s.last_error, SYNAPSE__ERROR_CODE__UNAVAILABLE);
  syn_req_cancel(t, again); /* after completion: a no-op */
  assert_int_equal(syn_req_active(t), 0);
  syn_req_table_free(t);
}

static void test_bounded_and_stable(void **state) {
  (void)state;
  enum { N = 5000 };
  syn_req_table *t = syn_req_table_new(N);
  seen s = {0};
  syn_req **all = calloc(N, sizeof *all);
  for (int i = 0; i < N; i++) {
    all[i] = syn_req_start(t, on_done, &s);
    assert_non_null(all[i]);
    all[i]->data[0] = (unsigned char)i;
  }
  assert_int_equal(syn_req_active(t), N);
  /* Growing the table never moved the first entries. */
  for (int i = 0; i < N; i++) {
    assert_ptr_equal(syn_req_find(t, all[i]->id), all[i]);
    assert_int_equal(all[i]->data[0], (unsigned char)i);
  }
  for (int i = 0; i < N; i++) syn_req_cancel(t, all[i]);
  assert_int_equal(syn_req_active(t), 0);
  free(all);
  syn_req_table_free(t);
}

static void test_full_table(void **state) {
  (void)state;
  syn_req_table *t = syn_req_table_new(4096); /* one chunk */
  seen s = {0};
  int n = 0;
  while (syn_req_start(t, on_done, &s)) n++;
  assert_int_equal(n, 4096);
  syn_req_table_free(t); /* in-flight requests are dropped without callbacks */
  assert_int_equal(s.calls, 0);
}

/* A callback may cancel its own request (a group ending on its own part): harmless. */
static void cancel_self(syn_req *req, const Synapse__Reply *reply) {
  (void)reply;
  syn_req_table *t = req->ctx;
  syn_req_cancel(t, req);
}

static void test_cancel_inside_callback(void **state) {
  (void)state;
  syn_req_table *t = syn_req_table_new(8);
  syn_req *r = syn_req_start(t, cancel_self, NULL);
  r->ctx = t;
  Synapse__Reply rep = reply_for(r->id);
  syn_req_complete(t, r, &rep);
  assert_int_equal(syn_req_active(t), 0);
  syn_req *next = syn_req_start(t, on_done, NULL);
  assert_non_null(next);
  syn_req_table_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_complete_once),          cmocka_unit_test(test_generations),
      cmocka_unit_test(test_bounded_and_stable),     cmocka_unit_test(test_full_table),
      cmocka_unit_test(test_cancel_inside_callback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
