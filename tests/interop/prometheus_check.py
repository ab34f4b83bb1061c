"""The real Prometheus scrapes real zkcoord agents (issue 13 item 1).

Run by tests/interop/prometheus-metrics.sh inside the ZooKeeper harness
(ZKC_TEST_SERVERS set). Two agents with metrics on free loopback ports, one
Prometheus (its own config, its own TSDB in a temp dir, scrape_interval 1s),
and checks through Prometheus's HTTP API that the values follow the
cluster: zkcoord_leader goes 1 after the election, zkcoord_members goes up
when the second agent joins, handler runs count up, the leader change after
the first agent leaves shows on the second. Meanwhile hostile clients hold
connections to the second agent's endpoint (half requests kept alive by a
byte at a time, a huge header): its scrapes, its election and its handler
still happen in time. Every wait has a deadline; nothing sleeps to
synchronise. Processes are stopped by pid.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

BUILD = os.environ.get("top_builddir", ".")
AGENT = os.path.join(BUILD, "zkcoord")
SERVERS = os.environ["ZKC_TEST_SERVERS"]
procs = []


def fail(msg):
    print("FAIL: " + msg, flush=True)
    raise SystemExit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(argv, log):
    p = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=20):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_for(what, fn, timeout):
    """Poll fn until it returns a true value, up to timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except OSError as e:  # not up yet
            last = e
        if last and not isinstance(last, Exception):
            return last
        # Poll at a bounded rate: the waited-for condition has no event
        # we could block on from here (Prometheus has no watch API).
        threading.Event().wait(0.1)
    fail("%s: not within %d s (last: %r)" % (what, timeout, last))


def scrape(port, timeout=2):
    t0 = time.monotonic()
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=timeout) as r:
        body = r.read().decode()
        ctype = r.headers.get("Content-Type")
    return body, ctype, time.monotonic() - t0


def query(prom, q):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (prom, urllib.parse.urlencode({"query": q}))
    with urllib.request.urlopen(url, timeout=5) as r:
        doc = json.load(r)
    if doc.get("status") != "success":
        fail("query %s: %s" % (q, doc))
    return [float(x["value"][1]) for x in doc["data"]["result"]]


def value(prom, q):
    """The single value of q, or None while there is none."""
    v = query(prom, q)
    return v[0] if len(v) == 1 else None


def agent_config(work, name, zk, port, events_file):
    cfg = {
        "zookeeper": {"servers": zk, "session_timeout_ms": 2000},
        "cluster": "prom",
        "member": {"id": name, "host": "127.0.0.1", "port": 1},
        "health": {"args": ["/bin/true"], "interval_ms": 200, "rise": 1, "fall": 2},
        "election": {"enabled": True},
        "handlers": [
            {
                "on": ["elected", "members_changed"],
                "shell": 'echo "$ZKCOORD_EVENT" >> %s' % events_file,
            }
        ],
        "metrics": {"listen": "127.0.0.1:%d" % port},
    }
    path = os.path.join(work, name + ".json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


class Hostile:
    """Connections that never finish their request: each sends half a
    request line, then one byte of a header every second, which keeps it
    from the inactivity timeout for as long as the test runs."""

    def __init__(self, port, n):
        self.socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
            self.socks.append(s)
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_ev.wait(1.0):
            for s in self.socks:
                try:
                    s.sendall(b"a")
                except OSError:
                    pass

    def alive(self):
        n = 0
        for s in self.socks:
            try:
                s.setblocking(False)
                if s.recv(1) == b"":
                    continue  # closed by the server
                n += 1
            except BlockingIOError:
                n += 1
            except OSError:
                pass
        return n

    def close(self):
        self.stop_ev.set()
        self.t.join()
        for s in self.socks:
            s.close()


def huge_header(port):
    """A request whose header is far above the endpoint's limit: answered
    431 (or cut), never 200."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n")
    except OSError:
        pass
    try:
        head = s.recv(64)
    except OSError:
        head = b""
    s.close()
    return head


def main():
    prom_bin = shutil.which("prometheus")
    if not prom_bin:
        fail("prometheus not found: install the Debian package prometheus (scripts/install-deps)")
    work = tempfile.mkdtemp(prefix="zkc-prom-")
    try:
        run(work, prom_bin)
    finally:
        for p in procs:
            stop(p)
        shutil.rmtree(work, ignore_errors=True)


def run(work, prom_bin):
    p1, p2, pp = free_port(), free_port(), free_port()
    ev1, ev2 = os.path.join(work, "a1.events"), os.path.join(work, "a2.events")
    c1 = agent_config(work, "a1", SERVERS, p1, ev1)
    c2 = agent_config(work, "a2", SERVERS, p2, ev2)
    i1, i2 = "127.0.0.1:%d" % p1, "127.0.0.1:%d" % p2
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        f.write(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: zkcoord\n    static_configs:\n"
            "      - targets: ['%s', '%s']\n" % (i1, i2)
        )
    a1 = start([AGENT, "-c", c1], os.path.join(work, "a1.log"))
    prom = start(
        [
            prom_bin,
            "--config.file=" + os.path.join(work, "prometheus.yml"),
            "--storage.tsdb.path=" + os.path.join(work, "tsdb"),
            "--web.listen-address=127.0.0.1:%d" % pp,
            "--log.level=warn",
        ],
        os.path.join(work, "prometheus.log"),
    )
    t0 = time.monotonic()

    def since():
        return "%.1f s" % (time.monotonic() - t0)

    print("== a1 alone: scraped, leader, one member", flush=True)
    wait_for("Prometheus up", lambda: query(pp, "up") is not None, 30)
    wait_for("a1 scraped (up == 1)", lambda: value(pp, 'up{instance="%s"}' % i1) == 1, 30)
    wait_for("a2 down (up == 0)", lambda: value(pp, 'up{instance="%s"}' % i2) == 0, 30)
    wait_for("a1 leads", lambda: value(pp, 'zkcoord_leader{instance="%s"}' % i1) == 1, 30)
    wait_for("a1 sees 1 member", lambda: value(pp, 'zkcoord_members{instance="%s"}' % i1) == 1, 30)
    tok1 = value(pp, 'zkcoord_fencing_token{instance="%s"}' % i1)
    if not tok1 or tok1 <= 0:
        fail("fencing token of a1's term: %r" % tok1)
    wait_for(
        "a1 connected",
        lambda: value(pp, 'zkcoord_connection_state{instance="%s",state="connected"}' % i1) == 1,
        30,
    )
    wait_for(
        "a1's health checks counted",
        lambda: (value(pp, 'zkcoord_health_checks_total{instance="%s",result="pass"}' % i1) or 0)
        >= 3,
        30,
    )
    wait_for(
        "a1's ZooKeeper probe timed",
        lambda: (
            value(pp, 'zkcoord_zookeeper_request_duration_seconds_count{instance="%s"}' % i1) or 0
        )
        >= 1,
        30,
    )
    wait_for(
        "a1's elected handler counted",
        lambda: value(
            pp, 'zkcoord_handler_runs_total{instance="%s",event="elected",outcome="success"}' % i1
        )
        == 1,
        30,
    )
    print("  a1: leader 1, members 1, token %d, handler and probe counted (%s)" % (tok1, since()))

    print("== a2 joins: members 2 on both, a1 counts the join and runs its handler", flush=True)
    runs_before = (
        value(pp, 'sum(zkcoord_handler_runs_total{instance="%s",event="members_changed"})' % i1)
        or 0
    )
    a2 = start([AGENT, "-c", c2], os.path.join(work, "a2.log"))
    wait_for("a2 scraped", lambda: value(pp, 'up{instance="%s"}' % i2) == 1, 30)
    wait_for("a1 sees 2 members", lambda: value(pp, 'zkcoord_members{instance="%s"}' % i1) == 2, 30)
    wait_for("a2 sees 2 members", lambda: value(pp, 'zkcoord_members{instance="%s"}' % i2) == 2, 30)
    wait_for(
        "a1 counts the join",
        lambda: (
            value(pp, 'zkcoord_membership_changes_total{instance="%s",change="joined"}' % i1) or 0
        )
        >= 1,
        30,
    )
    wait_for(
        "a1's members_changed handler runs count up",
        lambda: (
            value(
                pp, 'sum(zkcoord_handler_runs_total{instance="%s",event="members_changed"})' % i1
            )
            or 0
        )
        > runs_before,
        30,
    )
    if value(pp, 'zkcoord_leader{instance="%s"}' % i2) != 0:
        fail("a2 leads while a1 does")
    print("  members 2 on both, a1's handler runs went up from %d (%s)" % (runs_before, since()))

    print("== hostile clients on a2's endpoint; a1 leaves; a2 takes over in time", flush=True)
    hostile = Hostile(p2, 12)
    head = huge_header(p2)
    if head.startswith(b"HTTP/1.1 200"):
        fail("a huge header was served")
    print("  huge header: %r" % head[:32])
    body, ctype, took = scrape(p2)
    if "version=0.0.4" not in (ctype or "") or took > 1.0:
        fail("scrape beside 12 stalled clients: %r in %.3f s" % (ctype, took))
    print("  direct scrape beside 12 stalled clients: %.1f ms" % (took * 1000))
    changes_before = value(pp, 'zkcoord_leader_changes_total{instance="%s"}' % i2) or 0
    t_leave = time.monotonic()
    stop(a1)
    if a1.returncode != 0:
        fail("a1 exited with %d" % a1.returncode)
    wait_for("a2 leads after a1 left", lambda: value(pp, 'zkcoord_leader{instance="%s"}' % i2) == 1, 15)
    took_leader = time.monotonic() - t_leave
    wait_for(
        "a2's elected handler ran",
        lambda: value(
            pp, 'zkcoord_handler_runs_total{instance="%s",event="elected",outcome="success"}' % i2
        )
        == 1,
        15,
    )
    wait_for(
        "a2 counts the leader change",
        lambda: (value(pp, 'zkcoord_leader_changes_total{instance="%s"}' % i2) or 0)
        > changes_before,
        15,
    )
    wait_for("a2 sees 1 member", lambda: value(pp, 'zkcoord_members{instance="%s"}' % i2) == 1, 15)
    wait_for("a1 gone from Prometheus (up == 0)", lambda: value(pp, 'up{instance="%s"}' % i1) == 0, 15)
    tok2 = value(pp, 'zkcoord_fencing_token{instance="%s"}' % i2)
    if not tok2 or tok2 <= tok1:
        fail("fencing token after the change: %r (a1's term: %r)" % (tok2, tok1))
    with open(ev2) as f:
        if "elected" not in f.read().split():
            fail("a2's handler did not record the elected event")
    alive = hostile.alive()
    if alive < 12:
        fail("only %d of 12 hostile connections were still open: the check proved less" % alive)
    # Prometheus's own last scrape of a2 succeeded with the hostile
    # connections held open.
    if value(pp, 'up{instance="%s"}' % i2) != 1:
        fail("Prometheus cannot scrape a2 beside the hostile clients")
    dur = value(pp, 'scrape_duration_seconds{instance="%s"}' % i2)
    hostile.close()
    print(
        "  a2 leads %.2f s after a1's TERM, token %d > %d, its handler ran, Prometheus scrape "
        "%.1f ms, %d hostile connections open throughout (%s)"
        % (took_leader, tok2, tok1, (dur or 0) * 1000, alive, since())
    )
    stop(a2)
    if a2.returncode != 0:
        fail("a2 exited with %d" % a2.returncode)
    stop(prom)
    print("PASS: Prometheus scraped the agents and saw the cluster change", flush=True)


if __name__ == "__main__":
    main()
