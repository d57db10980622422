"""Bounded waiting, for conditions with no event to wait on (another process's view of
the cluster, a figure that converges, a port that starts answering).

There is one helper: wait_for() calls a function every `interval` seconds until it returns
something truthy, and fails after `timeout` with the last value or error seen, so that a
failure says what was there instead of only that time ran out.
"""
import http.client
import time

# Errors that mean "not yet": a process still starting (connection refused or reset), a
# reply cut short or not yet in shape (a member missing from a view).
NOT_YET = (OSError, ValueError, http.client.HTTPException, KeyError)


def wait_for(fn, timeout, interval=0.05, what="condition"):
    """Calls fn until it returns something truthy; returns that value. fn runs at least
    once. Raises AssertionError after `timeout` seconds with the last value or error
    seen; errors other than NOT_YET propagate at once."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except NOT_YET as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout}s (last: {last!r})")
        time.sleep(interval)
