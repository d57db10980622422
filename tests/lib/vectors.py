"""Vectors for the search tests: test data and the exact answers to check replies against.

The contract's similarity is cosine clamped to 0..1. exact_topk() is the brute-force
answer, computed in pure Python (fine for the few hundred vectors of a test);
topk_mismatch() and check_topk() compare a search reply's results with it, letting hits
swap ranks only where their similarities differ by less than the tolerance.
"""
import math

SIM_TOL = 1e-4


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def cosine(a, b):
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    return sum(x * y for x, y in zip(a, b)) / (na * nb)


def similarity(a, b):
    """The contract's similarity: cosine clamped to 0..1."""
    return min(1.0, max(0.0, cosine(a, b)))


def clustered_vectors(rng, n, dim, clusters=8, spread=0.35, scale=(0.2, 5.0), digits=6):
    """n vectors around `clusters` random centres (vector i around centre i % clusters),
    each scaled by a random norm in `scale` so the tracker has to normalise (cosine, not
    inner product), rounded to `digits` decimals. Returns (vectors, centres)."""
    centres = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(clusters)]
    out = []
    for i in range(n):
        c = centres[i % clusters]
        v = [x + rng.gauss(0, spread) for x in c]
        s = rng.uniform(*scale)
        out.append([round(x * s, digits) for x in v])
    return out, centres


def exact_topk(query, items, k, min_similarity=0.0):
    """items: {hash: vector}. Returns [(hash, similarity)] best first, ties by hash."""
    scored = [(h, similarity(query, v)) for h, v in items.items()]
    scored = [s for s in scored if s[1] >= min_similarity]
    scored.sort(key=lambda s: (-s[1], s[0]))
    return scored[:k]


def topk_mismatch(results, query, items, k, min_similarity=0.0, tol=SIM_TOL, ordered=False):
    """None when `results` (a search reply's list) is the exact cosine top-k of items:
    same length, no duplicates, only hashes of items, the same similarity as the exact
    answer rank by rank (within tol), each reported similarity that hash's true one, and
    hashes in the exact order except that near-equal ones (within tol) may swap.
    ordered: the reported similarities must also be in non-increasing order. Otherwise
    a description of the first difference."""
    want = exact_topk(query, items, k, min_similarity)
    got = [(r["info_hash"], r["similarity"]) for r in results]
    if len(got) != len(want):
        return f"{len(got)} results, expected {len(want)}"
    if len({h for h, _ in got}) != len(got):
        return "duplicate hits"
    for i, ((gh, gs), (wh, ws)) in enumerate(zip(got, want)):
        if gh not in items:
            return f"rank {i}: {gh} is a hash outside the searched set"
        if abs(gs - ws) > tol:
            return f"rank {i}: similarity {gs}, expected {ws} ({gh} vs {wh})"
        true = similarity(query, items[gh])
        if abs(true - gs) > tol:
            return f"rank {i}: {gh} reported {gs}, true {true}"
        if gh != wh and abs(true - ws) > tol:
            return f"rank {i} is {gh} (similarity {true}), expected {wh} ({ws})"
    sims = [s for _, s in got]
    if ordered and sims != sorted(sims, reverse=True):
        return f"not ordered by similarity: {sims}"
    return None


def check_topk(tc, results, query, items, k, min_similarity=0.0, tol=SIM_TOL, msg=""):
    """Fails the unittest case tc unless topk_mismatch(..., ordered=True) finds nothing."""
    err = topk_mismatch(results, query, items, k, min_similarity, tol, ordered=True)
    if err:
        tc.fail(f"{msg}: {err}")
