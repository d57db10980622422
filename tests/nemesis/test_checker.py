#!/usr/bin/env python3
"""The nemesis checker on made-up histories: each rule accepts what the contract allows
and catches what it forbids (a checker that passes everything checks nothing)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402


def w(op, key, start, end, outcome, value=None):
    return {"client": "c0", "op": op, "key": key, "value": value, "start": start, "end": end,
            "outcome": outcome, "result": None}


def get(key, start, status, value=None):
    return {"client": "c0", "op": "get", "key": key, "start": start, "end": start + 0.01,
            "outcome": "ok", "result": {"status": status, "value": value}}


def final(status, value=None, found=None):
    return {"status": status, "value": value, "found_by_search": status == 200 if found is None else found}


class CheckerTest(unittest.TestCase):
    def run_check(self, history, finals, faults=(), window=5):
        return checker.check(history, finals, list(faults), window)[0]

    def test_last_acknowledged_write_wins(self):
        h = [w("register", "k", 0, 1, "ok", "v1"), w("register", "k", 2, 3, "ok", "v2")]
        self.assertEqual(self.run_check(h, {"k": final(200, "v2")}), [])
        v = self.run_check(h, {"k": final(200, "v1")})
        self.assertEqual([x[0] for x in v], ["final"])

    def test_acknowledged_delete_stays_deleted(self):
        h = [w("register", "k", 0, 1, "ok", "v1"), w("delete", "k", 2, 3, "ok")]
        self.assertEqual(self.run_check(h, {"k": final(404)}), [])
        self.assertEqual([x[0] for x in self.run_check(h, {"k": final(200, "v1")})], ["final"])

    def test_unknown_write_after_the_last_ack_may_land(self):
        h = [w("register", "k", 0, 1, "ok", "v1"), w("delete", "k", 2, 4, "unknown")]
        self.assertEqual(self.run_check(h, {"k": final(200, "v1")}), [])
        self.assertEqual(self.run_check(h, {"k": final(404)}), [])

    def test_unknown_write_before_a_later_ack_cannot_win(self):
        # The unknown register's deadline passed before the later delete began.
        h = [w("register", "k", 0, 1, "unknown", "v1"), w("delete", "k", 2, 3, "ok")]
        self.assertEqual([x[0] for x in self.run_check(h, {"k": final(200, "v1")})], ["final"])

    def test_failed_write_never_counts(self):
        h = [w("register", "k", 0, 1, "ok", "v1"), w("register", "k", 2, 3, "fail", "v2")]
        self.assertEqual([x[0] for x in self.run_check(h, {"k": final(200, "v2")})], ["final"])

    def test_reads_during_the_run(self):
        h = [w("register", "k", 0, 1, "ok", "v1"), w("delete", "k", 2, 3, "ok"),
             get("k", 1.5, 200, "v1"), get("k", 2.5, 200, "v1"), get("k", 2.5, 404),
             get("k", 3.5, 404)]
        self.assertEqual(self.run_check(h, {"k": final(404)}), [])
        # The deleted shard read back after the delete was acknowledged: resurrected.
        h.append(get("k", 4.0, 200, "v1"))
        v = self.run_check(h, {"k": final(404)})
        self.assertEqual([x[0] for x in v], ["resurrected"])
        # A value never written at all: stale (or worse).
        v = self.run_check(h[:-1] + [get("k", 1.5, 200, "v9")], {"k": final(404)})
        self.assertEqual([x[0] for x in v], ["stale"])

    def test_unanswered_reads_tell_nothing(self):
        h = [w("delete", "k", 2, 3, "ok"), get("k", 4, 503)]
        self.assertEqual(self.run_check(h, {"k": final(404)}), [])

    def test_search_follows_the_final_state(self):
        h = [w("register", "k", 0, 1, "ok", "v1")]
        self.assertEqual([x[0] for x in self.run_check(h, {"k": final(200, "v1", found=False)})],
                         ["search"])
        h = [w("register", "k", 0, 1, "ok", "v1"), w("delete", "k", 2, 3, "ok")]
        self.assertEqual([x[0] for x in self.run_check(h, {"k": final(404, found=True)})],
                         ["search"])

    def test_announce_failures_only_in_windows(self):
        h = [w("announce", "s", 10.2, 10.3, "fail"), w("announce", "s", 30, 30.1, "unknown")]
        v = self.run_check(h, {}, faults=[(10, 12)], window=5)
        self.assertEqual([x[0] for x in v], ["announce"])  # the one at 30 s
        self.assertEqual(self.run_check(h[:1], {}, faults=[(10, 12)], window=5), [])

    def test_missing_final_read_is_a_violation(self):
        h = [w("register", "k", 0, 1, "ok", "v1")]
        self.assertEqual([x[0] for x in self.run_check(h, {})], ["final"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
