"""The nemesis test's checker: verifies a history of client operations against the
cluster's contract. Pure functions over plain data, so the checker itself is tested
(tests/nemesis/test_checker.py) on histories made up to break each rule.

A history is a list of operations, each a dict:
  {"client": str, "op": "register"|"delete"|"get"|"search"|"announce", "key": str,
   "value": str (register: the display name written), "start": float, "end": float,
   "outcome": "ok"|"fail"|"unknown", "result": ...}
where "ok" is an acknowledgement, "fail" a definite refusal (the operation did not take
effect), and "unknown" a timeout or an error after which it may or may not have (a write
answered 503 was persisted somewhere, maybe). Every key is written by one client only,
one operation at a time, so a key's writes are totally ordered by that client.

Reads: a get's result is {"status": 200, "value": name} or {"status": 404} or
{"status": 503} (no answer: tells nothing). A final read (op "final") is the state after
every fault healed and anti-entropy ran; "final_search" says whether a search by the
shard's own vector found it.

Rules (the nemesis test's contract):
- Final state: each key's final state is its last acknowledged write, or one of the
  writes of unknown outcome made after it (one of those may have landed).
- Reads during the run: a get that succeeded returns the last write acknowledged before
  it started, or one of unknown outcome since, or one still in flight; in particular no
  acknowledged delete comes back while no later write could have recreated the shard.
- Search: a key live at the end is found by search; a key deleted at the end is not.
- Announces fail only inside detection windows (a fault began or ended at most `window`
  seconds before).
"""

DELETED = None  # the state of a deleted (or never registered) key


def _writes(history):
    """{key: [op, ...]} of register/delete operations, in start order."""
    out = {}
    for op in history:
        if op["op"] in ("register", "delete"):
            out.setdefault(op["key"], []).append(op)
    for ops in out.values():
        ops.sort(key=lambda o: o["start"])
    return out


def _state_of(op):
    return op["value"] if op["op"] == "register" else DELETED


def allowed_states(writes, at):
    """The states a key may be in at time `at` (a read that started then): the last
    write acknowledged before `at`, plus every write of unknown outcome after it that
    started before `at`, plus every write still in flight at `at`. A key never written
    acknowledged counts as deleted."""
    last_ok = None
    for op in writes:
        if op["end"] <= at and op["outcome"] == "ok":
            last_ok = op
    states = {_state_of(last_ok) if last_ok else DELETED}
    for op in writes:
        if last_ok is not None and op["start"] < last_ok["start"]:
            continue
        if op is last_ok:
            continue
        started = op["start"] < at
        pending = op["end"] > at  # still in flight when the read began
        if started and (op["outcome"] == "unknown" or pending):
            states.add(_state_of(op))
    return states


def final_states(writes):
    """The states a key may end in: its last acknowledged write, or a later write of
    unknown outcome (or any write of unknown outcome when none was acknowledged)."""
    return allowed_states(writes, float("inf"))


def check(history, finals, faults, window):
    """Returns (violations, counts). finals: {key: {"status": 200|404, "value": name,
    "found_by_search": bool}}; faults: [(start, end)] intervals (end = start for
    instant faults); window: seconds after a fault ends during which announces may fail."""
    violations = []
    writes = _writes(history)
    for key, ops in writes.items():
        want = final_states(ops)
        got = finals.get(key)
        if got is None:
            violations.append(("final", key, "no final read"))
            continue
        state = got["value"] if got["status"] == 200 else DELETED if got["status"] == 404 else "?"
        if state == "?" or state not in want:
            violations.append(("final", key, f"ended {state!r}, allowed {sorted(map(repr, want))}"))
        if got["status"] == 200 and not got.get("found_by_search", False):
            violations.append(("search", key, "live at the end but not found by search"))
        if got["status"] == 404 and got.get("found_by_search", False):
            violations.append(("search", key, "deleted at the end but found by search"))
    for op in history:
        if op["op"] != "get" or op["outcome"] != "ok":
            continue
        res = op["result"]
        if res["status"] not in (200, 404):
            continue
        state = res.get("value") if res["status"] == 200 else DELETED
        allowed = allowed_states(writes.get(op["key"], []), op["start"])
        if state not in allowed:
            kind = "resurrected" if state is not DELETED and DELETED in allowed and len(allowed) == 1 \
                else "stale"
            violations.append((kind, op["key"], f"read {state!r} at {op['start']:.2f}, allowed "
                                                f"{sorted(map(repr, allowed))}"))
    outside = 0
    for op in history:
        if op["op"] != "announce" or op["outcome"] == "ok":
            continue
        if not any(a - 0.5 <= op["start"] <= b + window for a, b in faults):
            outside += 1
            violations.append(("announce", op["key"], f"failed at {op['start']:.2f}, outside "
                                                      f"every detection window"))
    counts = {
        "ops": len(history),
        "ok": sum(o["outcome"] == "ok" for o in history),
        "failed": sum(o["outcome"] == "fail" for o in history),
        "unknown": sum(o["outcome"] == "unknown" for o in history),
        "announce_failures": sum(o["op"] == "announce" and o["outcome"] != "ok" for o in history),
        "announce_failures_outside": outside,
        "keys": len(writes),
        "reads_checked": sum(o["op"] == "get" and o["outcome"] == "ok" and
                             o["result"]["status"] in (200, 404) for o in history),
    }
    return violations, counts
