#!/usr/bin/env python3
"""The status page (GET /, router/dashboard.h) in a real browser: Debian's chromium,
headless, driven by tests/integration/status_page_browser.mjs (puppeteer-core), against a
router and three nodes on loopback.

- The page lists every member alive, with the router's figures (incarnation, partitions
  primary and replica summing to the partition count, swarms), draws the ring and the rate
  charts, and fits a phone's width (the table scrolls inside its own box).
- With JavaScript off, the members table is there, rendered by the router.
- A node's admin port serves the same page (its members, no rates or search box).
- A search typed into the box (reached with the keyboard: the skip link, then Enter) shows
  the expected top hit first, with its similarity, live seeders and leechers, tags and a
  magnet link naming its info_hash and this tracker; the Copy button puts it on the
  clipboard.
- After kill -9 of a node, the page shows it suspect and then dead, within DEAD_BOUND_S
  of the kill (the detection bound of test_cluster_detection plus the page's refresh),
  awaited by polling the DOM with a deadline; its "Recent changes" list says so too.
- A standalone process (`./tracker`) serves it too: one member, one partition.
- Any JavaScript console error, uncaught page error, failed request or HTTP error status
  seen by the browser fails the test.

Screenshots go to $SYNAPSE_TEST_OUTPUT/status_page (default: test-output/status_page in the
build directory of $SYNAPSE_BIN); README.md's docs/status-page.png is overview.png.
Without chromium or puppeteer-core (scripts/setup.sh installs both) the test fails.

Run: /usr/bin/python3 tests/integration/test_status_page.py (SYNAPSE_BIN picks the binary).
"""
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import cluster as cu  # noqa: E402
from synapse_proc import TrackerProcess, binary_path  # noqa: E402
from tracker_proto import rand_hash  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DRIVER = os.path.join(HERE, "status_page_browser.mjs")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PUPPETEER = os.path.join(ROOT, "tests", "interop", "npm", "node_modules", "puppeteer-core")

# The page refreshes every REFRESH_MS here (?refresh=; 2 s by default) so that a
# suspicion, which lasts about 1.2 s at three nodes, is on screen for a few refreshes.
REFRESH_MS = 250
# kill -9 to "dead" on the page: test_cluster_detection's bound for every member (6 s)
# plus the page's refresh and one /cluster/status answer (at most 300 ms).
DEAD_BOUND_S = 7.0
STEP_S = 15.0        # any other wait in the page
COMMAND_S = 30.0     # any one command of the driver
BUDGET_S = 90.0      # the whole test: no command of the browser starts or waits past it
DIM = 8
TARGET_NAME = "Lighthouse keeper logbook"


def output_dir():
    base = os.environ.get("SYNAPSE_TEST_OUTPUT") or os.path.join(
        os.path.dirname(os.path.dirname(binary_path())), "test-output")
    path = os.path.join(base, "status_page")
    os.makedirs(path, exist_ok=True)
    return path


class Browser:
    """The driver process (and its chromium, in the driver's own process group): one
    JSON command a line, one reply a line, each bounded, all within `deadline`."""

    def __init__(self, deadline):
        self.deadline = deadline
        self.proc = subprocess.Popen(["node", DRIVER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, start_new_session=True,
                                     env=dict(os.environ, CHROMIUM=CHROMIUM))
        self.buf = b""
        self.errors = []

    def call(self, cmd, timeout=COMMAND_S, **kw):
        if time.monotonic() >= self.deadline:
            raise AssertionError(f"browser {cmd}: the test's {BUDGET_S:.0f}s are spent")
        self.proc.stdin.write((json.dumps(dict(cmd=cmd, **kw)) + "\n").encode())
        self.proc.stdin.flush()
        deadline = min(time.monotonic() + timeout, self.deadline)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.proc.stdout], [], [], max(0.0, left))
            if not r:
                raise AssertionError(f"browser driver: no answer to {cmd} within {timeout}s")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError(f"browser driver exited (rc {self.proc.wait()}) during {cmd}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        reply = json.loads(line)
        self.errors = reply.pop("errors", [])
        if "error" in reply:
            raise AssertionError(f"browser {cmd}: {reply['error']}")
        return reply

    def wait(self, js, timeout):
        return self.call("wait", js=js, timeout_ms=int(timeout * 1000), timeout=timeout + COMMAND_S)

    def eval(self, js):
        return self.call("eval", js=js)["value"]

    def close(self):
        self.deadline = max(self.deadline, time.monotonic() + 10)
        try:
            self.call("close", timeout=10)
        except (AssertionError, OSError, ValueError) as e:
            cu.log("browser close:", e)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            cu.log("browser driver did not exit: killing its process group")
        try:  # the driver's group: chromium too, should the driver have left it behind
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


def state_of(member_id):
    """A page expression: the state cell of a member's row, or null."""
    return (f"(() => {{ const r = document.querySelector('#members-body tr[data-id=\"{member_id}\"]');"
            f" return r ? r.querySelector('.state').textContent : null; }})()")


class StatusPageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [what for what, ok in (
            (f"chromium at {CHROMIUM} (Debian package chromium)", os.access(CHROMIUM, os.X_OK)),
            (f"puppeteer-core in {os.path.dirname(PUPPETEER)}", os.path.isdir(PUPPETEER)))
            if not ok]
        if missing:
            raise AssertionError("the status page test needs " + " and ".join(missing) +
                                 ": run scripts/setup.sh")
        cls.t0 = time.monotonic()
        cls.out = output_dir()
        cls.cluster = cu.start_cluster(nodes=3, routers=1)
        cls.browser = None
        try:
            cls.router = cls.cluster.routers["r0"]
            cls.url = f"http://{cls.router.host}:{cls.router.http_port}/"
            cls.seed_data()
            cls.stop_traffic = threading.Event()
            cls.traffic = threading.Thread(target=cls.background_traffic, daemon=True)
            cls.traffic.start()
            cls.browser = Browser(cls.t0 + BUDGET_S)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "traffic", None):
            cls.stop_traffic.set()
            cls.traffic.join(timeout=10)
        if cls.browser:
            cls.browser.close()
        cls.cluster.close()
        cu.log(f"status page test: {time.monotonic() - cls.t0:.1f}s in all; screenshots in {cls.out}")

    @classmethod
    def seed_data(cls):
        """Shards with distinct words (one of them the search's target, with two seeders
        and a leecher), and a few announces and scrapes for the charts."""
        rng = random.Random(11)
        names = [(TARGET_NAME, ["maritime", "logbook"], "watch notes kept at the lighthouse"),
                 ("Rust borrow checker notes", ["rust", "compilers"], "lifetimes and borrows"),
                 ("Sourdough starter diary", ["baking"], "hydration and feeding schedule"),
                 ("Orbital mechanics cheatsheet", ["space", "physics"], "transfer orbits"),
                 ("Keeper of the tomato garden", ["garden"], "watering plan for summer")]
        cls.hashes, cls.vectors = {}, {}
        for name, tags, desc in names:
            h = rand_hash(rng).hex()
            vec = [round(rng.uniform(-1, 1), 4) for _ in range(DIM)]
            body = cu.shard_body(h, vec, name=name, tags=tags)
            body["description"] = desc
            s, raw = cls.router.post("/api/register", body)
            if s != 200:
                raise AssertionError(f"register {name}: HTTP {s} {raw[:200]!r}")
            cls.hashes[name] = h
            cls.vectors[name] = vec
        target = bytes.fromhex(cls.hashes[TARGET_NAME])
        for port, left in ((41001, 0), (41002, 0), (41003, 1000)):
            cu.announce(cls.router, target, port, left=left)
        for _ in range(20):
            cu.scrape(cls.router, [target])

    @classmethod
    def background_traffic(cls):
        """A trickle of announces and scrapes (about 20 and 5 a second) for the charts;
        refusals while a node dies are expected and ignored."""
        rng = random.Random(12)
        hashes = [rand_hash(rng) for _ in range(8)]
        port = 42000
        while not cls.stop_traffic.wait(0.05):
            port += 1
            try:
                cu.announce(cls.router, hashes[port % len(hashes)], port, left=port % 3)
                if port % 4 == 0:
                    cu.scrape(cls.router, hashes[:2])
            except (AssertionError, OSError, ValueError):
                pass

    def assertNoPageErrors(self):
        self.assertEqual(self.browser.errors, [], "the browser saw errors")

    def shot(self, name, **kw):
        path = os.path.join(self.out, name)
        self.browser.call("screenshot", path=path, **kw)
        self.assertGreater(os.path.getsize(path), 1000)
        return path

    def open_page(self, **kw):
        self.browser.call("open", url=f"{self.url}?refresh={REFRESH_MS}", **kw)
        self.browser.wait("Number(document.body.dataset.refreshed || 0) >= 1", STEP_S)

    def layout_shift_over_refreshes(self, refreshes=6):
        """The layout shift (the browser's Layout Instability API, summed) while the page
        refreshes `refreshes` times after its first refresh."""
        self.browser.eval(
            "(() => { window.__shift = 0; window.__shifts = [];"
            " new PerformanceObserver((l) => { for (const e of l.getEntries()) if (!e.hadRecentInput) {"
            " window.__shift += e.value; window.__shifts.push(e.sources.map((s) => s.node ? "
            "(s.node.id || s.node.className || s.node.nodeName) : '?')); } })"
            ".observe({type: 'layout-shift'}); window.__from = Number(document.body.dataset.refreshed); return true; })()")
        self.browser.wait(f"Number(document.body.dataset.refreshed) >= window.__from + {refreshes}", STEP_S)
        return self.browser.eval("[window.__shift, window.__shifts]")

    def test_1_members_alive_ring_and_charts(self):
        self.open_page(width=1100, height=900)
        ids = sorted(self.cluster.nodes) + sorted(self.cluster.routers)
        want = json.dumps(ids)
        self.browser.wait(
            "(() => { const ids = " + want + "; return ids.every((i) => { "
            "const r = document.querySelector('#members-body tr[data-id=\"' + i + '\"]'); "
            "return r && r.dataset.state === 'alive'; }) && "
            "document.querySelectorAll('#members-body tr').length === ids.length; })()", STEP_S)
        rows = self.browser.eval(
            "[...document.querySelectorAll('#members-body tr')].map((r) => "
            "[...r.children].map((c) => c.textContent))")
        cu.log("members on the page:", rows)
        by_id = {r[0]: r for r in rows}
        self.assertEqual(sorted(by_id), ids)
        primaries = sum(int(by_id[n][5]) for n in self.cluster.nodes)
        self.assertEqual(primaries, 1024, "primary partitions of the nodes sum to the partitions")
        for n in self.cluster.nodes:
            self.assertEqual(by_id[n][1], "node")
            self.assertTrue(by_id[n][3].isdigit(), f"incarnation of {n}: {by_id[n][3]!r}")
            self.assertRegex(by_id[n][4], r"^\d+\.\d s ago$")
            self.assertTrue(by_id[n][7].isdigit(), f"swarms of {n}: {by_id[n][7]!r}")
        self.assertEqual(by_id["r0"][1], "router")
        self.assertEqual(by_id["r0"][4], "self")
        # The ring: 1024 partitions x 3 bands, every node in the legend.
        legend = self.browser.eval("[...document.querySelectorAll('#ring-legend li')].map((l) => l.dataset.node)")
        self.assertEqual(sorted(legend), sorted(self.cluster.nodes))
        arcs = self.browser.eval("document.querySelectorAll('#ring path.arc').length")
        self.assertGreater(arcs, 3 * 100, "the ring has arcs for the partitions' runs")
        # The charts: the router's history has points, and the scrapes above show.
        self.browser.wait("document.querySelectorAll('.chart svg path.line').length === 4", STEP_S)
        peaks = self.browser.eval(
            "Object.fromEntries([...document.querySelectorAll('.chart')].map((f) => "
            "[f.dataset.series, Number(f.dataset.peak)]))")
        cu.log("chart peaks (per second):", peaks)
        for series in ("announces", "scrapes", "registrations"):
            self.assertGreater(peaks[series], 0, f"the {series} before the page shows in its chart")
        shift, what = self.layout_shift_over_refreshes()
        cu.log(f"layout shift over 6 refreshes (desktop): {shift:.4f} {what}")
        self.assertLess(shift, 0.001, f"refreshes move the layout: {what}")
        self.assertNoPageErrors()
        self.shot("desktop.png")
        # A phone: nothing wider than the screen (the table scrolls in its own box).
        self.open_page(width=390, height=844, mobile=True)
        overflow = self.browser.eval("document.documentElement.scrollWidth - window.innerWidth")
        self.assertLessEqual(overflow, 0, "the page is wider than a phone's screen")
        shift, what = self.layout_shift_over_refreshes()
        cu.log(f"layout shift over 6 refreshes (phone): {shift:.4f} {what}")
        self.assertLess(shift, 0.001, f"refreshes move the layout: {what}")
        self.shot("phone.png")
        self.assertNoPageErrors()

    def test_2_without_javascript_a_table(self):
        self.browser.call("open", url=self.url, javascript=False, width=1000, height=700)
        rows = self.browser.eval(
            "[...document.querySelectorAll('#members-body tr')].map((r) => [r.dataset.id, r.dataset.state])")
        self.assertEqual(sorted(rows), sorted([i, "alive"] for i in
                                              list(self.cluster.nodes) + list(self.cluster.routers)))
        hidden = self.browser.eval(
            "[...document.querySelectorAll('.js-only')].every((e) => getComputedStyle(e).display === 'none')")
        self.assertTrue(hidden, "the parts that need JavaScript are hidden without it")
        self.shot("no-javascript.png")
        self.assertNoPageErrors()

    def test_3_node_admin_port_serves_the_page(self):
        node = self.cluster.nodes["n0"]
        self.browser.call("open", url=f"http://{node.host}:{node.http_port}/?refresh={REFRESH_MS}",
                          width=1000, height=700)
        self.browser.wait("Number(document.body.dataset.refreshed || 0) >= 1", STEP_S)
        rows = self.browser.eval(
            "[...document.querySelectorAll('#members-body tr')].map((r) => [r.dataset.id, r.dataset.state])")
        self.assertEqual(sorted(rows), sorted([i, "alive"] for i in
                                              list(self.cluster.nodes) + list(self.cluster.routers)))
        shown = self.browser.eval(
            "[...document.querySelectorAll('.router-only, .node-only')].filter((e) => "
            "getComputedStyle(e).display !== 'none').map((e) => e.className)")
        self.assertEqual(shown, ["node-only muted"], "a node's page says rates and search are on the routers")
        self.assertIn("from n0 (node)", self.browser.eval("document.getElementById('summary').textContent"))
        self.shot("node-admin-port.png")
        self.assertNoPageErrors()

    def test_4_search_box_shows_top_hit_with_magnet(self):
        self.open_page(width=1100, height=900)
        # Keyboard only: Tab to the skip link, Enter moves focus to the search box, type, Enter.
        self.browser.call("keys", keys=["Tab"])
        self.assertTrue(self.browser.eval("document.activeElement.classList.contains('skip')"))
        self.browser.call("keys", keys=["Enter"])
        self.browser.wait("document.activeElement && document.activeElement.id === 'q'", STEP_S)
        self.browser.call("keys", text="lighthouse keeper")
        self.browser.call("keys", keys=["Enter"])
        self.browser.wait("document.querySelectorAll('#results li').length > 0", STEP_S)
        hit = self.browser.eval(
            "(() => { const li = document.querySelector('#results li'); return {"
            "hash: li.dataset.infoHash, name: li.querySelector('.hit-name').textContent, "
            "figures: li.querySelector('.hit-figures').textContent, "
            "tags: [...li.querySelectorAll('.tag')].map((t) => t.textContent), "
            "magnet: li.querySelector('input.magnet').value}; })()")
        cu.log("top hit on the page:", hit)
        target = self.hashes[TARGET_NAME]
        self.assertEqual(hit["name"], TARGET_NAME)
        self.assertEqual(hit["hash"], target)
        self.assertEqual(sorted(hit["tags"]), ["logbook", "maritime"])
        self.assertRegex(hit["figures"], r"similarity \d+\.\d%")
        self.assertIn("2 seeders", hit["figures"])
        self.assertIn("1 leecher ", hit["figures"])
        self.assertTrue(hit["magnet"].startswith("magnet:?xt=urn:btih:" + target), hit["magnet"])
        self.assertIn(f"{self.router.host}%3A{self.router.http_port}%2Fannounce", hit["magnet"])
        status = self.browser.eval("document.getElementById('search-status').textContent")
        self.assertRegex(status, r"^\d+ hits?")
        # Copy: the magnet link lands on the clipboard.
        self.browser.eval("document.querySelector('#results li button').click(), true")
        self.browser.wait("document.querySelector('#results li button').textContent === 'Copied'", STEP_S)
        self.assertEqual(self.browser.eval("navigator.clipboard.readText()"), hit["magnet"])
        self.shot("search.png")
        # A pasted embedding goes to /api/search/embedding: the shard's own vector finds it
        # at similarity 1; text that is not an array of numbers is refused on the page.
        self.browser.eval("document.getElementById('q').value = '', document.getElementById('q').focus(), true")
        self.browser.call("keys", text="[1, 2")
        self.browser.call("keys", keys=["Enter"])
        self.browser.wait("document.getElementById('search-status').textContent === "
                          "'An embedding must be a JSON array of numbers.'", STEP_S)
        self.assertEqual(self.browser.eval("document.querySelectorAll('#results li').length"), 0)
        self.browser.eval("document.getElementById('q').value = '', true")
        self.browser.call("keys", text=json.dumps(self.vectors[TARGET_NAME]))
        self.browser.call("keys", keys=["Enter"])
        self.browser.wait("document.querySelector('#results li') && "
                          f"document.querySelector('#results li').dataset.infoHash === '{target}' && "
                          "/similarity 100\\.0%/.test(document.querySelector('#results li .hit-figures').textContent)",
                          STEP_S)
        self.assertNoPageErrors()

    def test_5_kill9_shows_suspect_then_dead(self):
        self.open_page(width=1100, height=900)
        victim = "n2"
        self.browser.wait(f"{state_of(victim)} === 'alive'", STEP_S)
        # Every state the victim's row takes, with its time, as the page renders it.
        self.browser.eval(
            "(() => { window.__seen = []; const note = () => { const s = " + state_of(victim) +
            "; const l = window.__seen; if (s && (!l.length || l[l.length - 1][0] !== s))"
            " l.push([s, performance.now()]); }; note();"
            " new MutationObserver(note).observe(document.getElementById('members-body'),"
            " {childList: true, subtree: true}); return true; })()")
        t_kill_page = self.browser.eval("performance.now()")
        self.cluster.nodes[victim].kill9()
        t0 = time.monotonic()
        self.browser.wait(f"{state_of(victim)} === 'suspect' || {state_of(victim)} === 'dead'",
                          DEAD_BOUND_S)
        self.shot("suspect.png")
        self.browser.wait(f"{state_of(victim)} === 'dead'", max(0.1, DEAD_BOUND_S - (time.monotonic() - t0)))
        dead_after = time.monotonic() - t0
        seen = self.browser.eval("window.__seen")
        steps = [(s, round((t - t_kill_page) / 1000, 2)) for s, t in seen]
        cu.log(f"{victim} killed: the page showed {steps}; dead {dead_after:.2f}s after the kill")
        self.assertEqual([s for s, _ in steps], ["alive", "suspect", "dead"],
                         "the page shows the node alive, then suspect, then dead")
        self.assertLessEqual(dead_after, DEAD_BOUND_S)
        changes = self.browser.eval(
            f"[...document.querySelectorAll('#changes li[data-id=\"{victim}\"]')].map((l) => l.dataset.state)")
        self.assertEqual(changes, ["dead", "suspect"], "Recent changes lists both, newest first")
        self.browser.wait("document.querySelectorAll('#ring path.arc.down').length > 0", STEP_S)
        summary = self.browser.eval("document.getElementById('summary').textContent")
        self.assertTrue(summary.startswith("2 of 3 nodes alive"), summary)
        self.shot("dead.png")
        # With one node of three dead, a search still finds the hit (R = 3), not partial.
        self.browser.eval("document.getElementById('q').focus(), true")
        self.browser.call("keys", text="lighthouse logbook")
        self.browser.call("keys", keys=["Enter"])
        self.browser.wait("document.querySelector('#results li .hit-name') && "
                          "document.querySelector('#results li .hit-name').textContent === "
                          f"{json.dumps(TARGET_NAME)}", STEP_S)
        status = self.browser.eval("document.getElementById('search-status').textContent")
        self.assertNotIn("partial", status)
        self.shot("overview.png")  # README.md's docs/status-page.png
        self.assertNoPageErrors()

    def test_6_standalone(self):
        with TrackerProcess(role="standalone", ready_timeout=20) as sa:
            self.browser.call("open", url=f"{sa.base_url}/?refresh={REFRESH_MS}", width=1000, height=800)
            self.browser.wait("Number(document.body.dataset.refreshed || 0) >= 1", STEP_S)
            self.assertTrue(self.browser.eval("document.getElementById('summary').textContent")
                            .startswith("Standalone: router and node in one process"))
            rows = self.browser.eval(
                "[...document.querySelectorAll('#members-body tr')].map((r) => [r.dataset.id, r.dataset.state])")
            self.assertEqual(rows, [["local", "alive"]])
            self.assertEqual(self.browser.eval("document.querySelectorAll('#ring path.arc').length"), 1)
            self.shot("standalone.png")
            self.assertNoPageErrors()


if __name__ == "__main__":
    unittest.main(verbosity=2)
