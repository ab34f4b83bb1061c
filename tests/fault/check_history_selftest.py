#!/usr/bin/python3
"""Self-test of check_history.py on made-up histories: each invariant must
flag the history that breaks it, with the expected kind, and pass the one
that keeps it (including the documented window). No server needed."""

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "check_history.py")
S = 1000000000  # ns per second


def write_case(d, workload, hists, meta_extra=(), commits=(), expect=None, leases=2,
               killed=()):
    os.makedirs(d)
    lines = ["%d schedule index=0 seed=1 kind=random workload=%s leases=%d timeout_ms=2000"
             % (1 * S, workload, leases)]
    for wid in hists:
        lines.append("%d worker id=%s pid=1 pin=-1" % (1 * S, wid))
    for wid in killed:
        lines.append("%d killed id=%s" % (5 * S, wid))
    lines.append("%d quiesce" % (20 * S))
    for wid in hists:
        if wid not in killed:
            lines.append("%d settle id=%s ok=1" % (25 * S, wid))
    lines.append("%d stopping" % (26 * S))
    lines.extend(meta_extra)
    lines.append("%d orphan_scan count=0" % (30 * S))
    with open(os.path.join(d, "meta"), "w") as f:
        f.write("\n".join(lines) + "\n")
    for wid, evs in hists.items():
        with open(os.path.join(d, wid + ".hist"), "w") as f:
            for t, text in evs:
                f.write("%d %s\n" % (int(t * S), text))
    with open(os.path.join(d, "commits"), "w") as f:
        for c in commits:
            f.write(c + "\n")
    if expect is not None:
        with open(os.path.join(d, "expect"), "w") as f:
            f.write(expect + "\n")


def session_ok(sid="a1", gen=1):
    return [(1.5, "session state=connected gen=%d sid=%s" % (gen, sid))]


def final(gen=1, sid="a1"):
    return [(27, "final gen=%d sid=%s state=connected ops=1" % (gen, sid))]


def mutex_hold(w, tok, t0, t1, n):
    return [(t0, "acquired side=m tok=%d" % tok),
            (t0 + 0.01, "write ok tok=%d n=%d via=lock" % (tok, n)),
            (t1, "releasing side=m tok=%d" % tok),
            (t1 + 0.001, "progress n=1")]


CASES = []


def case(name, expect_kinds):
    def deco(fn):
        CASES.append((name, expect_kinds, fn))
        return fn
    return deco


@case("mutex clean", set())
def _(d):
    write_case(d, "mutex", {
        "w0": session_ok("a") + mutex_hold("w0", 10, 2, 3, 1) + final(1, "a"),
        "w1": session_ok("b") + mutex_hold("w1", 11, 3.5, 4, 1) + final(1, "b"),
    }, commits=["w-0000000000 w0 10 1", "w-0000000001 w1 11 1"])


@case("mutex two holders", {"exclusive"})
def _(d):
    write_case(d, "mutex", {
        "w0": session_ok("a") + mutex_hold("w0", 10, 2, 4, 1) + final(1, "a"),
        "w1": session_ok("b") + mutex_hold("w1", 11, 3, 5, 1) + final(1, "b"),
    }, commits=["w-0000000000 w0 10 1", "w-0000000001 w1 11 1"])


@case("mutex window: paused holder hears LOST", set())
def _(d):
    w0 = session_ok("a") + [(2, "acquired side=m tok=10"), (2.01, "write ok tok=10 n=1 via=lock"),
                            (6, "write rejected tok=10 n=2 via=lock"), (6.1, "releasing side=m tok=10"),
                            (6.2, "session state=suspended gen=1 sid=a"),
                            (6.3, "session state=lost gen=1 sid=0"),
                            (6.4, "session state=connected gen=2 sid=c")] + final(2, "c")
    write_case(d, "mutex", {
        "w0": w0,
        "w1": session_ok("b") + mutex_hold("w1", 11, 5, 5.5, 1) + final(1, "b"),
    }, commits=["w-0000000000 w0 10 1", "w-0000000001 w1 11 1"])


@case("stale write committed", {"fencing"})
def _(d):
    write_case(d, "mutex", {
        "w0": session_ok("a") + mutex_hold("w0", 10, 2, 3, 1) + final(1, "a"),
        "w1": session_ok("b") + mutex_hold("w1", 11, 3.5, 4, 1) + final(1, "b"),
    }, commits=["w-0000000000 w1 11 1", "w-0000000001 w0 10 1"])


@case("token goes down in grant order", {"fencing"})
def _(d):
    write_case(d, "mutex", {
        "w0": session_ok("a") + mutex_hold("w0", 12, 2, 3, 1) + final(1, "a"),
        "w1": session_ok("b") + mutex_hold("w1", 11, 3.5, 4, 1) + final(1, "b"),
    }, commits=["w-0000000000 w0 12 1", "w-0000000001 w1 11 1"])


@case("semaphore over N", {"leases"})
def _(d):
    hs = {}
    for i in range(3):
        hs["w%d" % i] = session_ok("s%d" % i) + [
            (2 + i * 0.1, "acquired side=lease tok=%d" % (20 + i)),
            (3, "releasing side=lease tok=%d" % (20 + i)), (3.1, "progress n=1")] + final(1, "s%d" % i)
    write_case(d, "semaphore", hs, leases=2)


@case("rwlock reader under writer", {"rw"})
def _(d):
    write_case(d, "rwlock", {
        "w0": session_ok("a") + mutex_hold("w0", 10, 2, 4, 1)[:0] + [
            (2, "acquired side=w tok=10"), (4, "releasing side=w tok=10")] + final(1, "a"),
        "w1": session_ok("b") + [(3, "acquired side=r tok=11"), (3.5, "releasing side=r tok=11")] + final(1, "b"),
    })


@case("two leaders", {"exclusive"})
def _(d):
    write_case(d, "election", {
        "w0": session_ok("a") + [(2, "elected tok=10"), (5, "releasing side=lead")] + final(1, "a"),
        "w1": session_ok("b") + [(3, "elected tok=11"), (6, "releasing side=lead")] + final(1, "b"),
    })


@case("leader re-elected with its token after RECONNECTED", set())
def _(d):
    write_case(d, "election", {
        "w0": session_ok("a") + [(2, "elected tok=10"), (3, "session state=suspended gen=1 sid=a"),
                                 (3, "demoted tok=10 reason=suspended"),
                                 (3.5, "session state=reconnected gen=1 sid=a"), (3.6, "elected tok=10"),
                                 (5, "releasing side=lead")] + final(1, "a"),
        "w1": session_ok("b") + [(6, "elected tok=11"), (7, "releasing side=lead")] + final(1, "b"),
    })


@case("unannounced session swap (issue 9 bug 1)", {"session"})
def _(d):
    write_case(d, "mutex", {
        "w0": session_ok("a") + [(2, "session state=suspended gen=1 sid=a"),
                                 (4, "session state=lost gen=1 sid=a"),
                                 (4.1, "session state=connected gen=1 sid=a")] + final(2, "b"),
    })


@case("view does not converge", {"views"})
def _(d):
    write_case(d, "group", {
        "w0": session_ok("a") + [(21, "view n=1 dups=0 ids=w0"), (22, "settled converged=1")] + final(1, "a"),
        "w1": session_ok("b") + [(21, "view n=2 dups=0 ids=w0,w1"), (22, "settled converged=1")] + final(1, "b"),
    }, expect="w0,w1")


@case("duplicate right after the faults, then converged", set())
def _(d):
    write_case(d, "group", {
        "w0": session_ok("a") + [(20.1, "view n=3 dups=2 ids=w0,w1,w0"), (21, "view n=2 dups=0 ids=w0,w1"),
                                 (22, "settled converged=1")] + final(1, "a"),
        "w1": session_ok("b") + [(21, "view n=2 dups=0 ids=w1,w0"), (22, "settled converged=1")] + final(1, "b"),
    }, expect="w0,w1")


@case("duplicate never goes away", {"views"})
def _(d):
    write_case(d, "group", {
        "w0": session_ok("a") + [(21, "view n=3 dups=2 ids=w0,w1,w0"), (22, "settled converged=1")] + final(1, "a"),
    }, expect="w0,w1")


@case("worker crashed", {"progress"})
def _(d):
    write_case(d, "mutex", {"w0": session_ok("a") + final(1, "a")},
               meta_extra=["%d exit id=w0 signal=11" % (28 * S)])


@case("orphan and no progress", {"orphans", "progress"})
def _(d):
    write_case(d, "mutex", {"w0": session_ok("a") + final(1, "a")},
               meta_extra=["%d settle id=w0 ok=0" % (25 * S), "%d orphan_scan count=1" % (31 * S)])


def work_hold(item, tok, t0, t1, reason="moved"):
    out = [(t0, "assigned item=%s tok=%d" % (item, tok))]
    if t1 is not None:
        out.append((t1, "revoked item=%s tok=%d reason=%s" % (item, tok, reason)))
    return out


def work_case(d, w0, w1, commits=(), extra0=(), extra1=()):
    write_case(d, "work", {
        "w0": session_ok("a") + [(1.6, "items n=2")] + sorted(w0 + list(extra0)) + final(1, "a"),
        "w1": session_ok("b") + [(1.6, "items n=2")] + sorted(w1 + list(extra1)) + final(1, "b"),
    }, commits=commits)


@case("work clean: hand-over after REVOKED, every item held at the end", set())
def _(d):
    work_case(d, work_hold("i00", 10, 2, 4) + work_hold("i01", 11, 2, 27, "closed"),
              work_hold("i00", 20, 4.5, 27, "closed"),
              commits=["w-0000000000 w0 10 1 i00", "w-0000000001 w1 20 1 i00",
                       "w-0000000002 w0 11 2 i01"],
              extra0=[(3, "write ok tok=10 n=1 via=work"), (5, "write ok tok=11 n=2 via=work")],
              extra1=[(5, "write ok tok=20 n=1 via=work")])


@case("work: an item run by two members at once", {"items"})
def _(d):
    work_case(d, work_hold("i00", 10, 2, 4) + work_hold("i01", 11, 2, 27, "closed"),
              work_hold("i00", 20, 3, 27, "closed"))


@case("work window: expired holder revoked for session after the new owner began", set())
def _(d):
    work_case(d, work_hold("i00", 10, 2, 6, "session") + work_hold("i01", 11, 7, 27, "closed"),
              work_hold("i00", 20, 3, 27, "closed"),
              commits=["w-0000000000 w1 20 1 i00"],
              extra0=[(4, "write rejected tok=10 n=1 via=work")],
              extra1=[(3.5, "write ok tok=20 n=1 via=work")])


@case("work: the expired holder's write got through", {"items"})
def _(d):
    work_case(d, work_hold("i00", 10, 2, 6, "session") + work_hold("i01", 11, 7, 27, "closed"),
              work_hold("i00", 20, 3, 27, "closed"),
              commits=["w-0000000000 w1 20 1 i00", "w-0000000001 w0 10 1 i00"],
              extra0=[(4, "write ok tok=10 n=1 via=work")],
              extra1=[(3.5, "write ok tok=20 n=1 via=work")])


@case("work: an item's token goes down", {"items"})
def _(d):
    work_case(d, work_hold("i00", 20, 2, 3) + work_hold("i01", 11, 2, 27, "closed"),
              work_hold("i00", 10, 4, 27, "closed"))


@case("work: an item held by nobody after the faults", {"converge"})
def _(d):
    work_case(d, work_hold("i00", 10, 2, 27, "closed") + work_hold("i01", 11, 2, 10, "moved"),
              [])


@case("work strict fence: every commit below the next claim's zxid", set())
def _(d):
    work_case(d, work_hold("i00", 10, 2, 4) + work_hold("i01", 11, 2, 27, "closed"),
              work_hold("i00", 20, 4.5, 27, "closed"),
              commits=["w-0000000000 w0 10 1 i00 zxid=12", "w-0000000001 w1 20 1 i00 zxid=22",
                       "w-0000000002 w0 11 2 i01 zxid=23"],
              extra0=[(3, "write ok tok=10 n=1 via=work"), (5, "write ok tok=11 n=2 via=work")],
              extra1=[(5, "write ok tok=20 n=1 via=work")])


@case("work strict fence: a stale write after the next claim, before the next owner wrote",
      {"items"})
def _(d):
    # The log's tokens never go down (10, then 20): the old check passed it.
    work_case(d, work_hold("i00", 10, 2, 6, "session") + work_hold("i01", 11, 7, 27, "closed"),
              work_hold("i00", 20, 3, 27, "closed"),
              commits=["w-0000000000 w0 10 1 i00 zxid=21", "w-0000000001 w1 20 1 i00 zxid=22"],
              extra0=[(4, "write ok tok=10 n=1 via=work")],
              extra1=[(5, "write ok tok=20 n=1 via=work")])


@case("work window: a paused member's REVOKED (moved) returned late, then it heard LOST",
      set())
def _(d):
    work_case(d, work_hold("i00", 10, 2, 6) + work_hold("i01", 11, 7, 27, "closed"),
              work_hold("i00", 20, 5, 27, "closed"),
              extra0=[(6.01, "session state=suspended gen=1 sid=a"),
                      (6.5, "session state=lost gen=1 sid=a")])


@case("work: REVOKED (moved) returned after the next owner began, session still alive",
      {"items"})
def _(d):
    work_case(d, work_hold("i00", 10, 2, 6) + work_hold("i01", 11, 7, 27, "closed"),
              work_hold("i00", 20, 5, 27, "closed"),
              extra0=[(6.01, "session state=suspended gen=1 sid=a"),
                      (6.5, "session state=reconnected gen=1 sid=a")])


def takeover_case(d, t_next):
    write_case(d, "work", {
        "w0": session_ok("a") + [(1.6, "items n=2"), (2, "assigned item=i00 tok=10")],
        "w1": session_ok("b") + [(1.6, "items n=2"), (2, "assigned item=i01 tok=11"),
                                 (t_next, "assigned item=i00 tok=20"),
                                 (27, "revoked item=i00 tok=20 reason=closed"),
                                 (27, "revoked item=i01 tok=11 reason=closed")] + final(1, "b"),
    }, killed=("w0",))


@case("work takeover: a killed member's item runs elsewhere within timeout + 1 s", set())
def _(d):
    takeover_case(d, 5 + 2.5)


@case("work takeover: too late", {"takeover"})
def _(d):
    takeover_case(d, 5 + 3.5)


def task_case(d, w0, w1, w2=()):
    write_case(d, "task", {
        "w0": session_ok("a") + sorted(w0) + [(24, "results_scan n=1")] + final(1, "a"),
        "w1": session_ok("b") + sorted(w1) + final(1, "b"),
        "w2": session_ok("c") + sorted(w2) + final(1, "c"),
    })


@case("task clean: one result per task, from the last claim", set())
def _(d):
    task_case(d, [(2, "submitted id=task-0000000001 n=1"),
                  (4, "result id=task-0000000001 worker=w2 tok=9 status=0 via=wait"),
                  (24, "result id=task-0000000001 worker=w2 tok=9 status=0 via=scan")],
              [(2.5, "task_run id=task-0000000001 tok=5")],
              [(3.5, "task_run id=task-0000000001 tok=9")])


@case("task lost", {"tasks"})
def _(d):
    task_case(d, [(2, "submitted id=task-0000000001 n=1"), (2.1, "submitted id=task-0000000002 n=2"),
                  (4, "result id=task-0000000001 worker=w1 tok=5 status=0 via=wait")],
              [(2.5, "task_run id=task-0000000001 tok=5")])


@case("task: a stale holder's result landed", {"tasks"})
def _(d):
    task_case(d, [(2, "submitted id=task-0000000001 n=1"),
                  (4, "result id=task-0000000001 worker=w1 tok=5 status=0 via=wait")],
              [(2.5, "task_run id=task-0000000001 tok=5")],
              [(3.5, "task_run id=task-0000000001 tok=9")])


@case("task: a result written twice by different tokens", {"tasks"})
def _(d):
    task_case(d, [(2, "submitted id=task-0000000001 n=1"),
                  (4, "result id=task-0000000001 worker=w1 tok=5 status=0 via=wait"),
                  (24, "result id=task-0000000001 worker=w2 tok=9 status=0 via=scan")],
              [(2.5, "task_run id=task-0000000001 tok=5")],
              [(3.5, "task_run id=task-0000000001 tok=9")])


def main():
    tmp = tempfile.mkdtemp(prefix="chaos-selftest.")
    failed = 0
    try:
        for i, (name, kinds, fn) in enumerate(CASES):
            d = os.path.join(tmp, "c%d" % i)
            fn(d)
            r = subprocess.run([sys.executable, CHECKER, d], stdout=subprocess.PIPE,
                               universal_newlines=True)
            summary = [l for l in r.stdout.splitlines() if l.startswith("SUMMARY")]
            got = set()
            if summary and "kinds=" in summary[0]:
                k = summary[0].split("kinds=")[1]
                got = set() if k == "-" else set(k.split(","))
            ok = got == kinds and (r.returncode == 0) == (not kinds)
            print("%s: %s (expected %s, got %s)" % ("ok" if ok else "FAIL", name,
                                                    sorted(kinds) or "none", sorted(got) or "none"))
            if not ok:
                failed += 1
                print(r.stdout)
    finally:
        shutil.rmtree(tmp)
    print("%d passed, %d failed" % (len(CASES) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
