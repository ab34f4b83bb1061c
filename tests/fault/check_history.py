#!/usr/bin/python3
"""Check one chaos schedule's history (tests/fault/chaos.c writes it).

Usage: check_history.py DIR

DIR holds meta (the orchestrator's record: workers, faults, quiesce, exit,
orphan scan), <worker>.hist (one line per event, "<CLOCK_MONOTONIC ns>
<event> key=value..."), commits (the register's commit log in server order)
and, when the orphan scan failed, orphans.

Invariants (issue 10 item 1):
  exclusive    no two holders of the mutex / write lock / leadership at once,
               outside the documented window: the earlier holder's session was
               expired by the servers and it had not heard LOST yet. An
               overlap is allowed only if that holder was killed, or later
               heard its hold end by a connection event (lock LOST/SUSPENDED
               /session LOST; DEMOTED for suspended/lost) -- and then none of
               its fenced writes may have committed after the next holder's
               grant (checked on the server's commit log).
  fencing      tokens in the register's commit log never go down (the server's
               order is the grant order of the holders that wrote), and tokens
               in grant order (acquired/elected lines) strictly increase,
               outside the same window.
  rw           no reader holds while a writer holds (same window).
  leases       never more than N semaphore leases at once (same window).
  views        after the faults stop, every live group member's view converges
               to the live set with no duplicates.
  session      every session change is announced exactly once: CONNECTED
               starts a new session id each time, generations announced with no
               gap, the last generation the handle reached was announced, and
               states follow CONNECTED/RECONNECTED -> SUSPENDED|LOST,
               SUSPENDED -> RECONNECTED|LOST, LOST -> CONNECTED.
  items        work workload: no two workers run an item (ASSIGNED ..
               REVOKED returned) at once, outside the documented window
               (work.h, tests/integration/test_work.c): with a forced expiry
               the servers hand the claim to the new owner before the old
               client hears LOST, so the earlier hold may overlap only if it
               ended by REVOKED reason=session or a kill, or its worker next
               heard LOST (not RECONNECTED, and before it was ASSIGNED
               again), as for locks; per item, tokens
               strictly increase in grant order (outside the same window),
               and in the commit log (server order) an item's tokens never
               go down and every commit belongs to a hold its writer logged.
               Strict fencing (the workers write only through
               zkc_work_fenced_multi_ex): every commit of a hold has a zxid
               below the next hold's token (the czxid of the item's next
               claim) -- no stale write lands once the next owner claimed,
               with no window and no excuse (before, only "tokens never go
               down in the log" was checked: a stale write landing after the
               next claim but before the next owner's first write passed).
  takeover     work workload: an item held by a killed worker is ASSIGNED
               to another one within session timeout + one tick + 1 s of the
               kill (its session expired at most timeout + one tick after
               the kill: the servers last heard it before), checked only
               when no other fault but a reply reorder overlaps that span
               and the workers were not stopping yet.
  converge     work workload: when the workers are stopped, every item is
               held by exactly one live worker.
  tasks        task workload: every task submitted has a result (none lost),
               a task's result is one (worker, token) however often read,
               written by a run that worker logged, with the highest token
               any run of that task had (a stale holder's result was fenced).
  orphans      no ephemeral node left once all clients exited and their
               sessions expired.
  progress     every live client made progress after the faults stopped, and
               exited when asked.
Prints one "VIOLATION <invariant>: ..." line per finding, indented evidence
lines, and "SUMMARY ops=N violations=N"; exits 1 on any violation.
"""

import os
import sys

EXCLUSIVE_WORKLOADS = ("mutex", "election", "rwlock")


def fmt_t(ns, t0):
    return "%+.3fs" % ((ns - t0) / 1e9)


def parse_kv(words):
    kv = {}
    for w in words:
        if "=" in w:
            k, v = w.split("=", 1)
            kv[k] = v
    return kv


class Worker:
    def __init__(self, wid):
        self.id = wid
        self.events = []  # (ns, event, kv, raw)
        self.killed_ns = None
        self.meta = {}


def load(d):
    meta = []
    with open(os.path.join(d, "meta")) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            meta.append((int(parts[0]), parts[1], parse_kv(parts[2:]), line.rstrip("\n")))
    workers = {}
    for ns, ev, kv, raw in meta:
        if ev == "worker":
            w = Worker(kv["id"])
            w.meta = kv
            workers[w.id] = w
        elif ev == "killed":
            workers[kv["id"]].killed_ns = ns
    for w in workers.values():
        path = os.path.join(d, w.id + ".hist")
        if not os.path.exists(path):
            continue
        with open(path, errors="replace") as f:
            for line in f:
                parts = line.rstrip("\n").split(" ")
                if len(parts) < 2 or not parts[0].isdigit():
                    continue
                if parts[1] == "log":
                    kv = parse_kv(parts[2:3])
                    kv["msg"] = line.split("msg=", 1)[1].rstrip("\n") if "msg=" in line else ""
                elif parts[1] in ("session", "lock_event", "write", "view", "role"):
                    kv = parse_kv(parts[2:])
                    kv["_sub"] = parts[2] if len(parts) > 2 else ""
                else:
                    kv = parse_kv(parts[2:])
                w.events.append((int(parts[0]), parts[1], kv, line.rstrip("\n")))
    commits = []
    zxids = {}  # commit node name -> its czxid (chaos.c writes "zxid=" last)
    cpath = os.path.join(d, "commits")
    if os.path.exists(cpath):
        with open(cpath) as f:
            for line in f:
                p = line.split()
                if p and p[-1].startswith("zxid="):
                    zxids[p[0]] = int(p[-1][5:])
                    p = p[:-1]
                if len(p) >= 4:
                    commits.append((p[0], p[1], int(p[2]), int(p[3])) + tuple(p[4:5]))
    return meta, workers, commits, zxids


class Checker:
    def __init__(self, d):
        self.dir = d
        self.meta, self.workers, self.commits, self.zxids = load(d)
        self.notes = []
        self.violations = []
        head = [m for m in self.meta if m[1] == "schedule"][0]
        self.sched = head[2]
        self.t0 = head[0]
        self.workload = self.sched["workload"]
        self.leases = int(self.sched.get("leases", "1"))
        self.quiesce_ns = next((m[0] for m in self.meta if m[1] == "quiesce"), None)
        # Workers leave from here on: views shrink as they should.
        self.stopping_ns = next((m[0] for m in self.meta if m[1] == "stopping"), 1 << 62)
        self.faults = [m for m in self.meta if m[1] in ("fault_begin", "fault_end")]
        self.timeout_ms = int(self.sched.get("timeout_ms", "2000"))

    def violate(self, what, text, evidence=()):
        self.violations.append((what, text, list(evidence)))

    def t(self, ns):
        return fmt_t(ns, self.t0)

    # ---------------------------------------------------------------- holds
    def holds(self, acquire_events, release_events, sides=None):
        """The logged holds of every worker: dicts with w, tok, side, start,
        end, why, conn_ns. A hold runs from its acquired/elected line to its
        releasing/demoted line (or the kill, or the end of the history).
        conn_ns is when the holder first heard it could no longer be sure
        (lock SUSPENDED/LOST, session SUSPENDED/LOST, DEMOTED for suspended
        or lost, or its kill); a lock/session RECONNECTED clears it again,
        since the node was then verified to be still ours."""
        out = []
        for w in self.workers.values():
            open_h = {}
            # Holds that ended while the holder had not heard of trouble yet:
            # a LOST or SUSPENDED heard before its next grant or RECONNECTED
            # still says the servers may have ended the hold earlier (a
            # client paused by SIGSTOP logs "releasing" first, then hears).
            recent = []
            last_ns = w.events[-1][0] if w.events else 0
            for ns, ev, kv, raw in w.events:
                side = kv.get("side", "lead")
                if ev in ("session", "lock_event"):
                    st = kv.get("state", kv.get("ev"))
                    if st in ("lost", "suspended"):
                        for h in recent:
                            h["conn_ns"] = ns
                    if st in ("lost", "suspended", "reconnected", "connected"):
                        recent = []
                if ev in acquire_events and (sides is None or side in sides):
                    recent = []
                    prev = open_h.get(side)
                    if prev is not None and prev["tok"] == int(kv.get("tok", 0)):
                        continue  # the same grant heard twice (await, then ELECTED)
                    if prev is not None:
                        prev["end"] = ns
                        prev["why"] = "next_grant"
                    h = {"w": w.id, "tok": int(kv.get("tok", 0)), "side": side, "start": ns,
                         "end": None, "why": None, "conn_ns": None, "raw": raw}
                    open_h[side] = h
                    out.append(h)
                elif ev in release_events and (sides is None or side in sides):
                    h = open_h.pop(side, None)
                    if h:
                        if h["conn_ns"] is None:
                            recent.append(h)
                        h["end"] = ns
                        h["why"] = ev if ev != "demoted" else "demoted:" + kv.get("reason", "")
                        if ev == "demoted" and kv.get("reason") in ("suspended", "lost") \
                                and h["conn_ns"] is None:
                            h["conn_ns"] = ns
                elif ev == "lock_event":
                    tok = int(kv.get("tok", 0))
                    for h in open_h.values():
                        if tok != 0 and h["tok"] != tok:
                            continue
                        if kv.get("ev") in ("lost", "suspended") and h["conn_ns"] is None:
                            h["conn_ns"] = ns
                        elif kv.get("ev") == "reconnected":
                            h["conn_ns"] = None
                elif ev == "session":
                    st = kv.get("state")
                    for h in open_h.values():
                        if st in ("lost", "suspended") and h["conn_ns"] is None:
                            h["conn_ns"] = ns
                        elif st == "reconnected" and h["side"] == "lead":
                            h["conn_ns"] = None
            for h in open_h.values():
                if w.killed_ns is not None:
                    h["end"] = w.killed_ns
                    h["why"] = "killed"
                    if h["conn_ns"] is None:
                        h["conn_ns"] = w.killed_ns
                else:
                    h["end"] = last_ns
                    h["why"] = "end_of_history"
        return out

    def window_ok(self, early, late):
        """May `early` (granted first) overlap `late`? Only if early's hold
        ended by a connection event or a kill after late began; and then no
        write of early committed after late's first committed write."""
        return early["conn_ns"] is not None

    def check_exclusive(self, hs, label, conflict=None):
        hs = sorted(hs, key=lambda h: h["start"])
        for i, a in enumerate(hs):
            for b in hs[i + 1:]:
                if b["start"] >= a["end"]:
                    break
                if a["w"] == b["w"]:
                    continue
                if conflict is not None and not conflict(a, b):
                    continue
                # The hold with the older token is the one the servers ended.
                early, late = (a, b) if a["tok"] < b["tok"] else (b, a)
                if self.window_ok(early, late):
                    continue
                self.violate(label, "%s (tok %d, %s..%s, %s) and %s (tok %d, %s..%s, %s) held at once"
                             % (a["w"], a["tok"], self.t(a["start"]), self.t(a["end"]), a["why"],
                                b["w"], b["tok"], self.t(b["start"]), self.t(b["end"]), b["why"]),
                             [a["raw"], b["raw"]])

    def check_grant_order(self, hs, label):
        """Tokens in grant order strictly increase. A leader elected again
        after RECONNECTED keeps its term's token (same node): not a new
        grant, so an equal token of the same worker passes."""
        hs = sorted(hs, key=lambda h: h["start"])
        best = None
        for h in hs:
            if best is not None and h["tok"] == best["tok"] and h["w"] == best["w"]:
                continue
            if best is not None and h["tok"] <= best["tok"] and h["conn_ns"] is None:
                self.violate(label, "%s granted tok %d at %s after %s got tok %d at %s"
                             % (h["w"], h["tok"], self.t(h["start"]), best["w"], best["tok"],
                                self.t(best["start"])), [best["raw"], h["raw"]])
            if best is None or h["tok"] > best["tok"]:
                best = h

    def check_commits(self, hs):
        """The server's commit order: tokens never go down; every committed
        write belongs to a hold its writer logged."""
        last = None
        known = set((h["w"], h["tok"]) for h in hs)
        for name, wid, tok, n in self.commits:
            if last is not None and tok < last[2]:
                self.violate("fencing", "commit %s by %s with tok %d after commit %s by %s with tok %d: a stale holder's write got through"
                             % (name, wid, tok, last[0], last[1], last[2]))
            if last is None or tok >= last[2]:
                last = (name, wid, tok, n)
            if (wid, tok) not in known:
                self.violate("fencing", "commit %s by %s with tok %d matches no hold it logged" % (name, wid, tok))
        # Writes the client saw succeed must be in the log.
        logged = set((c[1], c[3]) for c in self.commits)
        for w in self.workers.values():
            for ns, ev, kv, raw in w.events:
                if ev == "write" and kv.get("_sub") == "ok" and (w.id, int(kv.get("n", -1))) not in logged:
                    self.violate("fencing", "%s: write n=%s acknowledged but not in the commit log" % (w.id, kv.get("n")), [raw])

    def check_leases(self, hs):
        points = []
        for h in hs:
            points.append((h["start"], 1, h))
            points.append((h["end"], -1, h))
        points.sort(key=lambda p: (p[0], p[1]))
        active = []
        for ns, d, h in points:
            if d < 0:
                if h in active:
                    active.remove(h)
                continue
            active.append(h)
            if len(active) > self.leases:
                excused = [a for a in active if a["conn_ns"] is not None]
                if len(active) - len(excused) > self.leases:
                    self.violate("leases", "%d leases held at %s (max %d): %s"
                                 % (len(active), self.t(ns), self.leases,
                                    ", ".join("%s tok %d" % (a["w"], a["tok"]) for a in active)))

    # ---------------------------------------------------------------- session
    def check_sessions(self):
        allowed = {
            None: ("connected",),
            "connected": ("suspended", "lost"),
            "reconnected": ("suspended", "lost"),
            "suspended": ("reconnected", "lost"),
            "lost": ("connected",),
        }
        for w in self.workers.values():
            prev = None
            announced = []  # (gen, sid)
            final = None
            for ns, ev, kv, raw in w.events:
                if ev == "session":
                    st = kv.get("state")
                    if st not in allowed.get(prev, ()):
                        self.violate("session", "%s: %s announced after %s" % (w.id, st, prev), [raw])
                    if st == "connected":
                        gen, sid = int(kv.get("gen", 0)), kv.get("sid")
                        if announced and sid == announced[-1][1] and sid != "0":
                            self.violate("session", "%s: CONNECTED (a new session) announced with the old session id %s (gen %d)"
                                         % (w.id, sid, gen), [raw])
                        if gen < len(announced) + 1:
                            self.violate("session", "%s: generation %d announced as new session number %d"
                                         % (w.id, gen, len(announced) + 1), [raw])
                        announced.append((gen, sid))
                    prev = st
                elif ev == "final":
                    final = (int(kv.get("gen", 0)), kv.get("sid"), raw)
            if final is not None and w.killed_ns is None:
                if final[0] != len(announced):
                    self.violate("session", "%s: the handle reached generation %d but %d CONNECTED were announced (%s)"
                                 % (w.id, final[0], len(announced),
                                    ", ".join("gen %d sid %s" % a for a in announced)), [final[2]])
                elif announced and final[1] not in ("0", announced[-1][1]):
                    self.violate("session", "%s: ended on session %s, but the last CONNECTED announced %s"
                                 % (w.id, final[1], announced[-1][1]), [final[2]])

    # ---------------------------------------------------------------- views
    def check_views(self):
        expect = None
        p = os.path.join(self.dir, "expect")
        if os.path.exists(p):
            with open(p) as f:
                expect = sorted(x for x in f.read().strip().split(",") if x)
        for w in self.workers.values():
            if w.killed_ns is not None:
                continue
            last_view = None
            for ns, ev, kv, raw in w.events:
                if ev == "view" and self.quiesce_ns and self.quiesce_ns <= ns < self.stopping_ns:
                    last_view = (kv, raw)
            if expect is None:
                continue
            settled = any(ev == "settled" for ns, ev, kv, raw in w.events)
            if last_view is None:
                if not settled:
                    self.violate("views", "%s: no view after the faults stopped (expected %s)" % (w.id, ",".join(expect)))
                continue
            ids = sorted(x for x in last_view[0].get("ids", "").split(",") if x)
            # Converge, not never differ: right after the faults a session
            # the servers have not expired yet may still show a member twice
            # (its old node), until its timeout runs out.
            dup = sorted(set(i for i in ids if ids.count(i) > 1))
            if dup:
                self.violate("views", "%s: last view still has duplicates %s" % (w.id, dup), [last_view[1]])
            elif ids != expect:
                self.violate("views", "%s: last view %s != live set %s" % (w.id, ",".join(ids), ",".join(expect)),
                             [last_view[1]])

    # ---------------------------------------------------------------- work
    def work_holds(self):
        """Holds of work items: dicts with w, item, tok, start, end, why
        (the REVOKED reason, "killed" or "end_of_history")."""
        out = []
        for w in self.workers.values():
            open_h = {}
            last_ns = w.events[-1][0] if w.events else 0
            for ns, ev, kv, raw in w.events:
                if ev == "assigned":
                    item = kv.get("item")
                    prev = open_h.get(item)
                    if prev is not None:
                        self.violate("items", "%s: %s ASSIGNED again (tok %s) while holding it (tok %d)"
                                     % (w.id, item, kv.get("tok"), prev["tok"]), [prev["raw"], raw])
                        prev["end"], prev["why"] = ns, "assigned_again"
                    h = {"w": w.id, "item": item, "tok": int(kv.get("tok", 0)), "start": ns,
                         "end": None, "why": None, "raw": raw}
                    open_h[item] = h
                    out.append(h)
                elif ev == "revoked":
                    h = open_h.pop(kv.get("item"), None)
                    if h is None:
                        if kv.get("reason") != "session":
                            self.violate("items", "%s: %s REVOKED without a hold" % (w.id, kv.get("item")), [raw])
                        continue
                    h["end"], h["why"] = ns, kv.get("reason", "?")
            for h in open_h.values():
                if w.killed_ns is not None:
                    h["end"], h["why"] = w.killed_ns, "killed"
                else:
                    h["end"], h["why"] = last_ns, "end_of_history"
        return out

    @staticmethod
    def work_excused(h):
        return h["why"] in ("session", "killed") or h.get("lost_during")

    def check_work(self):
        hs = self.work_holds()
        # As for locks (holds()): a hold whose worker, after the hold began,
        # next heard its session LOST (or a new session CONNECTED) -- not
        # RECONNECTED first, and before it was ASSIGNED anything after the
        # hold ended -- may have been ended by the servers before it ended
        # (a REVOKED moved still running when a paused member's session
        # expired: the servers gave the claim away on their own).
        for h in hs:
            w = self.workers[h["w"]]
            h["lost_during"] = False
            for ns, ev, kv, raw in w.events:
                if ns < h["start"]:
                    continue
                if ev == "assigned" and ns > h["end"]:
                    break
                # SUSPENDED alone decides nothing: RECONNECTED says the
                # session (and its claims) lived on, LOST or a new session
                # that it did not.
                if ev == "session" and kv.get("state") in ("lost", "reconnected", "connected"):
                    h["lost_during"] = kv.get("state") != "reconnected"
                    break
        by_item = {}
        for h in hs:
            by_item.setdefault(h["item"], []).append(h)
        for item, lst in sorted(by_item.items()):
            lst.sort(key=lambda h: h["start"])
            for i, a in enumerate(lst):
                for b in lst[i + 1:]:
                    if b["start"] >= a["end"]:
                        break
                    if a["w"] == b["w"]:
                        continue
                    early = a if a["tok"] < b["tok"] else b
                    if self.work_excused(early):
                        continue
                    self.violate("items", "%s run by %s (tok %d, %s..%s, %s) and %s (tok %d, %s..%s, %s) at once"
                                 % (item, a["w"], a["tok"], self.t(a["start"]), self.t(a["end"]), a["why"],
                                    b["w"], b["tok"], self.t(b["start"]), self.t(b["end"]), b["why"]),
                                 [a["raw"], b["raw"]])
            best = None
            for h in lst:
                if best is not None and h["tok"] <= best["tok"] and not self.work_excused(h):
                    self.violate("items", "%s granted to %s with tok %d at %s after %s got tok %d at %s"
                                 % (item, h["w"], h["tok"], self.t(h["start"]), best["w"], best["tok"],
                                    self.t(best["start"])), [best["raw"], h["raw"]])
                if best is None or h["tok"] > best["tok"]:
                    best = h
        # The commit log: per item, server order.
        known = set((h["w"], h["item"], h["tok"]) for h in hs)
        last = {}
        for c in self.commits:
            if len(c) < 5:
                continue
            name, wid, tok, n, item = c
            prev = last.get(item)
            if prev is not None and tok < prev[2]:
                self.violate("items", "%s: commit %s by %s with tok %d after commit %s by %s with tok %d: a stale holder's write got through"
                             % (item, name, wid, tok, prev[0], prev[1], prev[2]))
            if prev is None or tok >= prev[2]:
                last[item] = (name, wid, tok)
            if (wid, item, tok) not in known:
                self.violate("items", "%s: commit %s by %s with tok %d matches no hold it logged" % (item, name, wid, tok))
        logged = set((c[1], c[3]) for c in self.commits)
        for w in self.workers.values():
            for ns, ev, kv, raw in w.events:
                if ev == "write" and kv.get("_sub") == "ok" and (w.id, int(kv.get("n", -1))) not in logged:
                    self.violate("items", "%s: write n=%s acknowledged but not in the commit log" % (w.id, kv.get("n")), [raw])
        # Strict fencing: a hold's commits land before the next hold's
        # claim was created (its czxid is the next token).
        toks = {}
        for h in hs:
            toks.setdefault(h["item"], set()).add(h["tok"])
        for c in self.commits:
            if len(c) < 5 or c[0] not in self.zxids:
                continue
            name, wid, tok, n, item = c
            z = self.zxids[name]
            later = [t for t in toks.get(item, ()) if t > tok]
            if z <= tok:
                self.violate("items", "%s: commit %s by %s with tok %d has zxid %d, not after its own claim"
                             % (item, name, wid, tok, z))
            elif later and z > min(later):
                self.violate("items", "%s: commit %s by %s with tok %d landed at zxid %d, after the next claim (tok %d) was created: a stale write got through the fence"
                             % (item, name, wid, tok, z, min(later)))
        self.check_takeover(hs)
        # Convergence: held by exactly one live worker when stopping.
        nitems = 0
        for w in self.workers.values():
            for ns, ev, kv, raw in w.events:
                if ev == "items":
                    nitems = max(nitems, int(kv.get("n", 0)))
        if self.stopping_ns >= (1 << 62) or nitems == 0:
            return
        for k in range(nitems):
            item = "i%02d" % k
            holders = [h for h in by_item.get(item, [])
                       if h["start"] <= self.stopping_ns < h["end"]
                       and self.workers[h["w"]].killed_ns is None]
            if len(holders) != 1:
                self.violate("converge", "%s held by %d live workers when the faults were over and the workers settled (%s)"
                             % (item, len(holders), ", ".join("%s tok %d" % (h["w"], h["tok"]) for h in holders) or "none"))

    TICK_MS = 100  # chaos.c: ho.tick_time_ms, the servers' expiry granularity

    def check_takeover(self, hs):
        """Items of a killed worker run elsewhere within timeout + tick + 1 s."""
        spans = []  # (begin, end, type) of faults, from the meta lines
        open_f = {}
        for ns, ev, kv, raw in self.meta:
            key = (kv.get("type"), kv.get("target"))
            if ev == "fault_begin":
                open_f[key] = ns
                if kv.get("dur_ms") == "0":
                    spans.append((ns, ns, kv.get("type")))
            elif ev == "fault_end" and key in open_f:
                spans.append((open_f.pop(key), ns, kv.get("type")))
        for key, b in open_f.items():
            spans.append((b, 1 << 62, key[0]))
        checked = skipped = 0
        worst = 0
        for w in self.workers.values():
            if w.killed_ns is None:
                continue
            kill = w.killed_ns
            deadline = kill + (self.timeout_ms + self.TICK_MS + 1000) * 1000000
            for h in hs:
                if h["w"] != w.id or h["why"] != "killed":
                    continue
                busy = [sp for sp in spans if sp[2] not in ("kill_client", "reorder")
                        and sp[0] <= deadline and sp[1] >= kill]
                busy += [o for o in self.workers.values() if o is not w and o.killed_ns is not None
                         and kill <= o.killed_ns <= deadline]
                if busy or deadline >= self.stopping_ns:
                    skipped += 1
                    continue
                checked += 1
                nxt = [o for o in hs if o["item"] == h["item"] and o["w"] != w.id and o["start"] >= kill]
                first = min((o["start"] for o in nxt), default=None)
                if first is not None:
                    worst = max(worst, first - kill)
                if first is None or first > deadline:
                    self.violate("takeover", "%s of killed %s (tok %d) not running elsewhere %d ms after the kill (%s)"
                                 % (h["item"], w.id, h["tok"], (deadline - kill) // 1000000,
                                    "first at %d ms" % ((first - kill) // 1000000) if first else "never"),
                                 [h["raw"]])
        if checked or skipped:
            self.notes.append("takeover checked=%d skipped=%d worst_ms=%d"
                              % (checked, skipped, worst // 1000000))

    # ---------------------------------------------------------------- tasks
    def check_tasks(self):
        submitted = {}
        unknown = 0
        runs = {}  # task id -> [(worker, tok)]
        results = {}  # task id -> {(worker, tok)}
        scanned = False
        for w in self.workers.values():
            for ns, ev, kv, raw in w.events:
                if ev == "submitted":
                    submitted[kv.get("id")] = (w.id, raw)
                elif ev == "submit_fail":
                    unknown += 1
                elif ev == "task_run":
                    runs.setdefault(kv.get("id"), []).append((w.id, int(kv.get("tok", 0))))
                elif ev == "result":
                    results.setdefault(kv.get("id"), {}).setdefault((kv.get("worker"), int(kv.get("tok", 0))), raw)
                elif ev == "results_scan":
                    scanned = True
        for tid, rs in sorted(results.items()):
            if len(rs) > 1:
                self.violate("tasks", "%s: results by different tokens: %s" % (tid, ", ".join("%s tok %d" % k for k in rs)),
                             list(rs.values()))
            for (wid, tok), raw in rs.items():
                rr = runs.get(tid, [])
                if (wid, tok) not in rr:
                    self.violate("tasks", "%s: result by %s tok %d matches no run it logged" % (tid, wid, tok), [raw])
                elif tok < max(t for _, t in rr):
                    self.violate("tasks", "%s: result by %s tok %d, but a later claim had tok %d: a stale holder's result got through"
                                 % (tid, wid, tok, max(t for _, t in rr)), [raw])
        if scanned:
            for tid, (wid, raw) in sorted(submitted.items()):
                if tid not in results:
                    self.violate("tasks", "%s submitted by %s has no result after the faults stopped: lost" % (tid, wid), [raw])

    # ---------------------------------------------------------------- the rest
    def check_progress_and_exit(self):
        for ns, ev, kv, raw in self.meta:
            if ev == "settle" and kv.get("ok") != "1":
                w = self.workers.get(kv["id"])
                tail = [e[3] for e in (w.events[-4:] if w else [])]
                self.violate("progress", "%s made no progress within the deadline after the faults stopped" % kv["id"], tail)
            if ev == "exit" and (kv.get("status") not in ("0", None) or "signal" in kv):
                self.violate("progress", "%s exited abnormally (%s): a crash, or a sanitizer report"
                             % (kv["id"], raw.split(" ", 2)[2]))
            if ev == "exit_hang":
                self.violate("progress", "%s did not exit within the deadline when asked" % kv["id"])
            if ev == "orphan_scan" and kv.get("count") != "0":
                ev_lines = []
                p = os.path.join(self.dir, "orphans")
                if os.path.exists(p):
                    with open(p) as f:
                        ev_lines = [l.rstrip() for l in f]
                self.violate("orphans", "%s ephemeral node(s) left after every client exited and every session expired" % kv.get("count"), ev_lines)
        for w in self.workers.values():
            for ns, ev, kv, raw in w.events:
                if ev == "fatal":
                    self.violate("progress", "%s: %s" % (w.id, raw))

    def run(self):
        wl = self.workload
        if wl == "mutex":
            hs = self.holds(("acquired",), ("releasing",), sides=("m",))
            self.check_exclusive(hs, "exclusive")
            self.check_grant_order(hs, "fencing")
            self.check_commits(hs)
        elif wl == "rwlock":
            hs = self.holds(("acquired",), ("releasing",), sides=("w", "r"))
            writers = [h for h in hs if h["side"] == "w"]
            self.check_exclusive(writers, "exclusive")
            self.check_grant_order(writers, "fencing")
            self.check_exclusive(hs, "rw", conflict=lambda a, b: a["side"] == "w" or b["side"] == "w")
            self.check_commits(writers)
        elif wl == "election":
            hs = self.holds(("elected",), ("demoted", "releasing"))
            self.check_exclusive(hs, "exclusive")
            self.check_grant_order(hs, "fencing")
            self.check_commits(hs)
        elif wl == "semaphore":
            hs = self.holds(("acquired",), ("releasing",), sides=("lease",))
            self.check_leases(hs)
        elif wl == "group":
            self.check_views()
        elif wl == "work":
            self.check_work()
        elif wl == "task":
            self.check_tasks()
        self.check_sessions()
        self.check_progress_and_exit()
        ops = sum(1 for w in self.workers.values() for e in w.events if e[1] == "progress")
        for note in self.notes:
            print("NOTE %s" % note)
        for what, text, ev in self.violations:
            print("VIOLATION %s: %s" % (what, text))
            for line in ev:
                print("  evidence: %s" % line)
        print("SUMMARY ops=%d violations=%d kinds=%s" % (ops, len(self.violations),
                                                        ",".join(sorted(set(v[0] for v in self.violations))) or "-"))
        return 1 if self.violations else 0


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    return Checker(sys.argv[1]).run()


if __name__ == "__main__":
    sys.exit(main())
