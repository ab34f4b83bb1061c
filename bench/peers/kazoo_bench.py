#!/usr/bin/python3
"""kazoo figures to set beside bench/bench_lock and bench/bench_election,
against a server someone else runs (bench/peers/run.sh starts one through the
harness). Prints figures; never passes or fails on time.

  /usr/bin/python3 kazoo_bench.py SERVERS [CYCLES [ROUNDS]]   defaults 2000, 200

(1) kazoo Lock, uncontended: acquire+release on one path, one session,
    CYCLES times: cycles/s, ms per cycle, requests per cycle.
(2) kazoo Election hand-off with 2 and 10 participants on one path, one
    session (KazooClient) each: the leader's function returns (it resigns)
    and the time until the next participant's function is entered is one
    hand-off; the resigned one runs for election again, at the back.
    Median/p90 over ROUNDS rounds, requests per hand-off.
Requests come from the server's mntr (zk_packets_received): the delta around
a loop, less the packets the mntr calls themselves add (measured as the
delta of two back-to-back mntr calls; one per call).
The last line, "SUMMARY ...", is for run.sh's table.

Use Debian's /usr/bin/python3 (python3-kazoo); a python3 on PATH may lack it.
"""
import logging
import socket
import sys
import threading
import time

from kazoo.client import KazooClient

servers = None
mntr_self = 0


def mntr(key):
    host, port = servers.split(",")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"mntr")
        chunks = []
        while True:
            b = s.recv(4096)
            if not b:
                break
            chunks.append(b)
    for line in b"".join(chunks).decode("ascii", "replace").splitlines():
        kv = line.split("\t")
        if len(kv) == 2 and kv[0] == key:
            return int(kv[1].split(".")[0])
    raise RuntimeError("mntr: no " + key)


def packets():
    return mntr("zk_packets_received")


def client():
    c = KazooClient(hosts=servers, timeout=30.0)
    c.start(timeout=30)
    return c


def pct(sorted_, p):
    return sorted_[(len(sorted_) * p) // 100]


def uncontended(cycles):
    c = client()
    lock = c.Lock("/bench-kazoo/uncontended", "bench")
    for _ in range(500):  # warm-up: parent nodes
        lock.acquire()
        lock.release()
    p0 = packets()
    t0 = time.perf_counter()
    for _ in range(cycles):
        if not lock.acquire(timeout=10):
            raise RuntimeError("uncontended acquire timed out")
        lock.release()
    t1 = time.perf_counter()
    p1 = packets() - mntr_self  # the mntr after the loop counts once
    cycle_ms = (t1 - t0) * 1000 / cycles
    req = (p1 - p0) / cycles
    print("uncontended kazoo Lock acquire+release (%d cycles, one session)" % cycles)
    print("  cycles/s                 %.0f" % (1000 / cycle_ms))
    print("  time per cycle           %.3f ms" % cycle_ms)
    print("  requests per cycle       %.2f   (mntr zk_packets_received delta / cycles)" % req)
    c.stop()
    c.close()
    return 1000 / cycle_ms, cycle_ms, req


class Participant:
    """One session; runs for election in a loop until told to stop. While it
    leads, it waits for `resign` and then returns from the election function
    (kazoo releases the underlying lock), then runs again at the back."""

    def __init__(self, bench, idx, path):
        self.bench = bench
        self.idx = idx
        self.client = client()
        self.election = self.client.Election(path, "p%d" % idx)
        self.resign = threading.Event()
        self.rejoin = threading.Event()
        self.rejoin.set()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def lead(self):
        b = self.bench
        with b.cond:
            b.elected_at = time.perf_counter()
            b.leader = self
            b.elections += 1
            b.cond.notify_all()
        self.resign.wait()
        self.resign.clear()

    def loop(self):
        while not self.bench.stop:
            self.rejoin.wait()
            self.rejoin.clear()
            if self.bench.stop:
                return
            try:
                self.election.run(self.lead)
            except Exception:  # cancel() at the end
                return


class Handoff:
    def __init__(self):
        self.cond = threading.Condition()
        self.leader = None
        self.elections = 0
        self.elected_at = 0.0
        self.stop = False


def wait_contenders(election, n):
    """Setup, not timed: wait until n contenders are queued on the path."""
    end = time.monotonic() + 10
    while len(election.contenders()) < n:
        if time.monotonic() > end:
            raise RuntimeError("contenders never reached %d" % n)
        time.sleep(0.001)


def handoff(n, rounds):
    path = "/bench-kazoo/handoff-%d" % n
    b = Handoff()
    ps = [Participant(b, i, path) for i in range(n)]
    for p in ps:
        p.thread.start()
    with b.cond:
        if not b.cond.wait_for(lambda: b.leader is not None, 10):
            raise RuntimeError("nobody led")
    # every contender's query above counts as a request: wait before measuring
    wait_contenders(ps[0].election, n)
    time.sleep(0.02)
    ms, req = [], []
    p_start = packets()
    for r in range(rounds):
        with b.cond:
            leader, count = b.leader, b.elections
        before = packets()
        t0 = time.perf_counter()
        leader.resign.set()
        with b.cond:
            if not b.cond.wait_for(lambda: b.elections > count, 10):
                raise RuntimeError("round %d: no new leader within 10 s" % r)
            t1 = b.elected_at
        after = packets()
        ms.append((t1 - t0) * 1000)
        req.append(after - before - mntr_self)
        # the old leader runs again, at the back
        leader.rejoin.set()
        wait_contenders(ps[0].election, n)
        time.sleep(0.02)
    p_end = packets()
    ms.sort()
    req.sort()
    print("  participants %2d  rounds %d  hand-off ms: median %.2f  p90 %.2f  max %.2f  "
          "requests per hand-off: median %d (whole round with rejoin and contenders(): %.1f)"
          % (n, rounds, pct(ms, 50), pct(ms, 90), ms[-1], req[rounds // 2],
             (p_end - p_start - mntr_self * (2 * rounds + 1)) / rounds))
    b.stop = True
    for p in ps:
        p.election.cancel()
        p.resign.set()
        p.rejoin.set()
    for p in ps:
        p.client.stop()
        p.client.close()
    return pct(ms, 50)


def main():
    global servers, mntr_self
    if len(sys.argv) < 2:
        print("usage: kazoo_bench.py SERVERS [CYCLES [ROUNDS]]", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR)
    servers = sys.argv[1]
    cycles = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    a = packets()
    mntr_self = packets() - a
    print("kazoo_bench: existing ZooKeeper on %s (mntr adds %d packet per call; subtracted)\n"
          % (servers, mntr_self))
    cps, cms, creq = uncontended(cycles)
    print("\nkazoo Election hand-off (leader's function returns -> next leader's function; "
          "one session each)")
    h2 = handoff(2, rounds)
    h10 = handoff(10, rounds)
    print("SUMMARY kazoo %.0f %.3f %.2f %.2f %.2f" % (cps, cms, creq, h2, h10))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
