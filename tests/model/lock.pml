/*
 * A Promela model of zkcoord's fair lock engine: the mutex of src/lib/qengine.c
 * with the protected create of src/lib/pcreate.c, the background delete of
 * src/lib/queue.c, the connection states and local LOST timer of
 * src/lib/session.c and the fenced write of src/lib/fence.c, against
 * ZooKeeper seen as an atomic store of ephemeral sequential nodes.
 * tests/model/README maps every variable and step to the C it stands for;
 * scripts/model runs the checks (and the mutants, which must fail).
 *
 * Granularity: every C callback (a completion, a watch event, a session
 * hook, a zkc__when_connected one-shot) runs under the recipe's mutex and
 * is one atomic step here. A request is sent in one step, answered by the
 * server (or failed by the client library) in another, and its completion
 * runs in a third; session events and watch events can fall between any
 * two. As in the C client, one session's requests are answered in the
 * order they were sent and their completions run in that order.
 *
 * Bounds (spin -D...): NC clients (2 or 3), CYCLES acquire/release rounds
 * each, FAULTS connection drops or server-side expiries of a live session
 * in all (at most 3), TIMEOUTS acquires abandoned in all, MAXN creates.
 */
#ifndef NC
#define NC 2
#endif
#ifndef CYCLES
#define CYCLES 1
#endif
#ifndef FAULTS
#define FAULTS 2
#endif
#ifndef TIMEOUTS
#define TIMEOUTS 0
#endif
#ifndef MAXN
#define MAXN 8
#endif
#if FAULTS > 3
#error "FAULTS must be at most 3"
#endif
#define GENS (FAULTS + 1) /* a new session follows a fault */
#define NR 6              /* request slots per client */
#define NONE 255

/* ============================================================ ZooKeeper */

/* The lock's parent. Child i is the node with sequence number i: the
 * parent's cversion hands the numbers out in order. */
byte cseq;                  /* the next sequence number */
bool zn[MAXN];              /* child i exists */
byte zown[MAXN];            /* its ephemeralOwner (session id, from 1) */
byte zguid[MAXN];           /* the protected-create guid in its name */
bool salive[NC * GENS + 1]; /* the server's view of each session */

/* One data watch per client session (getData with watch=1). */
byte wnode[NC]; /* node watched, NONE when none */
byte wgen[NC];  /* handle generation that set it */
byte wev[NC];   /* its NODE_DELETED, not yet delivered, NONE when none */
byte wevg[NC];

/* The register the lock protects: written only through zkc_fenced_multi,
 * which puts a check op on the writer's lock node first. */
byte lasttok; /* token (czxid) of the last accepted write */

/* ======================================================= session.c */

#define C_CONN 1 /* ZKC_CONN_CONNECTED or RECONNECTED */
#define C_SUSP 2 /* ZKC_CONN_SUSPENDED: link down, local LOST timer running */
#define C_LOST 3 /* ZKC_CONN_LOST: the handle is being replaced */

byte gen[NC]; /* s->gen, the generation of the current handle */
bool up[NC];  /* the handle's connection to a server is up */
byte le[NC];  /* link epoch: every disconnect bumps it */
byte cst[NC]; /* s->state */
byte faults = FAULTS;
byte timeouts = TIMEOUTS;
#define SID(c) ((c) * GENS + gen[c] + 1) /* session id of the current handle */
#define SIDG(c, g) ((c) * GENS + (g) + 1)
/* an older session of c, abandoned at LOST, still alive on the server */
#define OLDG(c, k) (gen[c] >= (k) && salive[SID(c) - (k)])

/* what announce() tells the recipes' hooks */
#define H_SUSP 1
#define H_RECONN 2
#define H_LOST 3
#define H_CONN 4 /* CONNECTED, a new session */

/* ============================================== qengine.c (mutex rule: lock.c) */

#define L_IDLE 0
#define L_ACQ 1 /* L_ACQUIRING */
#define L_HELD 2
#define L_LOST 3

#define A_OK 0
#define A_SESSIONLOST 1 /* ZKC_ESESSIONLOST */
#define A_CLOSED 2      /* ZKC_ECLOSED */
#define A_TIMEDOUT 3    /* ZKC_ETIMEDOUT */

byte lst[NC];      /* l->state */
byte att[NC];      /* l->attempt */
byte rnd[NC];      /* l->round: a new session starts a new round */
bool creating[NC]; /* l->creating */
byte gcin[NC];     /* l->gc_inflight */
byte node[NC];     /* l->node (its sequence number), NONE for NULL */
byte ngen[NC];     /* l->node_gen */
byte tok[NC];      /* l->token: the czxid, here sequence + 1 */
byte osid[NC];     /* l->owner_sid */
byte watching[NC]; /* l->watching */
bool rq[NC];       /* l->resume armed: resume() runs once connected */
byte resatt[NC];   /* l->res_attempt */
byte resrc[NC];    /* l->res_rc */
byte done;         /* clients that finished all their rounds */

/* ======================================================== requests */

#define R_OK 1
#define R_NONODE 2
#define R_CONNLOSS 3 /* ZCONNECTIONLOSS */
#define R_EXPIRED 4  /* ZSESSIONEXPIRED */
#define R_CLOSING 5  /* ZCLOSING: zookeeper_close() flushed it */

#define K_PC 1 /* the protected create's request (phase in pph) */
#define K_GC 2 /* zoo_aget_children -> children_done */
#define K_WS 3 /* zoo_aget(watch) of the node ahead -> watch_set */
#define K_VF 4 /* zoo_aexists of our node after RECONNECTED -> verified */
#define K_BG 5 /* zoo_adelete of zkc__bg_delete -> bg_deleted */

#define S_SENT 1 /* on the wire or queued in the client */
#define S_ANS 2  /* answered, its completion not run yet */
#define S_WAIT 3 /* K_BG: in zkc__when_connected (bg_later) */

/* NR slots per client, index c * NR + i */
byte rk[NC * NR];   /* kind, 0 = free */
byte rs[NC * NR];   /* S_* */
byte ro[NC * NR];   /* place in the server's queue (S_SENT) or in the
                     * completion queue (S_ANS): 0 is the head */
byte rg[NC * NR];   /* handle generation it went out on */
byte re[NC * NR];   /* link epoch it went out in */
bool rd[NC * NR];   /* sent while the link was down: queued in the client */
byte rr[NC * NR];   /* the answer */
byte ra[NC * NR];   /* lock attempt (K_BG: the node's generation) */
byte rn[NC * NR];   /* lock round; K_PC: the pcreate instance */
byte rx[NC * NR];   /* the node it is about */
byte ry[NC * NR];   /* K_VF, K_PC: ephemeralOwner in the answer */
int rsnap[NC * NR]; /* K_GC: the children in the answer, a bit each */
byte nsent[NC];     /* requests of c in S_SENT */
byte nans[NC];      /* requests of c in S_ANS */

/* pcreate.c: the protected creates of client c */
#define P_NONE 0
#define P_CREATE 1 /* zoo_acreate2 -> created */
#define P_LIST 2   /* zoo_aget_children -> children_listed */
#define P_STAT 3   /* zoo_aexists of the node found by guid -> owner_checked */
#define P_DEL 4    /* zoo_adelete of that node -> deleted_foreign */
/* Two per client (index c * 2 + i): a new round may start while the
 * create of the old round still recovers. */
#define NP 2
byte pph[NC * NP];   /* phase; P_NONE when the instance is free */
bool pwait[NC * NP]; /* wait_and_recover: a zkc__when_connected is pending */
byte pgen[NC * NP];  /* p->gen */
byte patt[NC * NP];  /* the lock attempt it creates for (struct req) */
byte prnd[NC * NP];  /* ... and its round */
byte pguid[NC * NP]; /* p->token */
byte pfound[NC * NP];/* the node created or found by guid */
byte pown[NC * NP];  /* its ephemeralOwner */

hidden byte ti, ui, si, ah, jj, kk, dr, pi, d_pi;
/* Work a callback hands on to the end of its step (see tail): each
 * expands once, which keeps pan.c small enough to compile quickly. */
hidden byte d_hook, d_launch, d_pcfin = NONE, d_fail = NONE;
hidden int snapt;

/* ========================================================= the server */

/* Delete child n and fire the data watches on it. */
inline zdelete(n) {
    zn[n] = 0;
    for (ui : 0 .. NC - 1) {
        if
        :: wnode[ui] == n -> wev[ui] = n; wevg[ui] = wgen[ui]; wnode[ui] = NONE; wgen[ui] = 0
        :: else -> skip
        fi
    }
}

/* Session s expires: the server deletes its ephemeral nodes. */
inline expire(s) {
    salive[s] = 0;
    for (ti : 0 .. MAXN - 1) {
        if
        :: zn[ti] && zown[ti] == s -> zdelete(ti)
        :: else -> skip
        fi
    }
}

/* Create the next child for session s with guid g. */
inline zcreate(s, g) {
    assert(cseq < MAXN); /* else raise MAXN */
    zn[cseq] = 1;
    zown[cseq] = s;
    zguid[cseq] = g;
    cseq++
}

/* A request of client c sent on handle generation g in link epoch e (d:
 * sent while the link was down). The server runs it only while that
 * handle is connected; a request sent while up fails with connection loss
 * once the link has dropped (handle_error), one queued while down fails so
 * at a failed connect, or with ZCLOSING when the handle is closed. */
#define RUNS(c, g, e, d) ((g) == gen[c] && up[c] && ((d) || (e) == le[c]))
#define FLUSHED(c, g, e, d) (((g) == gen[c] && !up[c]) || (!(d) && ((e) != le[c] || (g) != gen[c])))
#define CLOSED(c, g, d) ((d) && (g) != gen[c])
#define SRV_READY(c, j) (rk[j] != 0 && rs[j] == S_SENT && ro[j] == 0 && \
    (RUNS(c, rg[j], re[j], rd[j]) || FLUSHED(c, rg[j], re[j], rd[j]) || CLOSED(c, rg[j], rd[j])))
/* qengine.c (attempt, round) check: request j of client c is of the current round */
#define THIS_ROUND(c, j) (ra[j] == att[c] && rn[j] == rnd[c])
#define CPL_READY(c, j) (rk[j] != 0 && rs[j] == S_ANS && ro[j] == 0)
#define BG_READY(c, j) (rk[j] == K_BG && rs[j] == S_WAIT && cst[c] == C_CONN && up[c])

/* ===================================================== the client */

inline slot_free(j) {
    rk[j] = 0; rs[j] = 0; ro[j] = 0; rg[j] = 0; re[j] = 0; rd[j] = 0;
    rr[j] = 0; ra[j] = 0; rn[j] = 0; rx[j] = 0; ry[j] = 0; rsnap[j] = 0
}

/* Queue slot j (already filled) behind c's requests on the wire. */
inline slot_send(c, j) {
    rs[j] = S_SENT;
    ro[j] = nsent[c];
    nsent[c]++;
    rg[j] = gen[c];
    re[j] = le[c];
    rd[j] = !up[c];
    rr[j] = 0
}

#define FREE_SLOT(c) (rk[(c) * NR] == 0 -> (c) * NR : (rk[(c) * NR + 1] == 0 -> (c) * NR + 1 : \
    (rk[(c) * NR + 2] == 0 -> (c) * NR + 2 : (rk[(c) * NR + 3] == 0 -> (c) * NR + 3 : \
    (rk[(c) * NR + 4] == 0 -> (c) * NR + 4 : (rk[(c) * NR + 5] == 0 -> (c) * NR + 5 : NONE))))))
/* some slot j of client c satisfies M(c, j) */
#define ANY_SLOT(M, c) (M(c, (c) * NR) || M(c, (c) * NR + 1) || M(c, (c) * NR + 2) || \
    M(c, (c) * NR + 3) || M(c, (c) * NR + 4) || M(c, (c) * NR + 5))

inline send(c, kind, what, a) {
    si = FREE_SLOT(c);
    assert(si != NONE); /* else raise NR */
    rk[si] = kind;
    ra[si] = a;
    rn[si] = rnd[c];
    rx[si] = what;
    slot_send(c, si)
}

inline finish_acquire(c, rc) {
    resatt[c] = att[c];
    resrc[c] = rc
}

inline clear_node(c) {
    node[c] = NONE; ngen[c] = 0; tok[c] = 0; osid[c] = 0
}

/* queue.c zkc__bg_delete: bg_send deletes while generation g lives */
inline bg_delete(c, n, g) {
    if
    :: gen[c] == g -> send(c, K_BG, n, g)
    :: else -> skip /* bg_finish: the node went with its session */
    fi
}

/* qengine.c drop_node */
inline drop_node(c) {
    if
    :: node[c] != NONE -> bg_delete(c, node[c], ngen[c]); clear_node(c)
    :: else -> skip
    fi;
    watching[c] = NONE
}

/* qengine.c zkc__qe_fail */
inline do_fail(c, rc) {
    finish_acquire(c, rc);
    drop_node(c);
    lst[c] = L_IDLE;
    att[c]++
}

/* qengine.c resume_later: zkc__retry_arm(resume), one pending at a time */
inline resume_later(c) {
    if
    :: rq[c] -> skip
    :: else -> rq[c] = 1
    fi
}

/* qengine.c evaluate */
inline evaluate(c) {
    send(c, K_GC, NONE, att[c]);
    gcin[c]++
}

/* pcreate.c finish, which calls qengine.c created */
/* this pcreate instance works for the current round of the current attempt */
#define P_THIS_ROUND(c) (patt[pi] == att[c] && prnd[pi] == rnd[c])

inline do_pc_finish(c, rc) {
    if
    :: P_THIS_ROUND(c) -> creating[c] = 0
    :: else -> skip
    fi;
    if
    :: !(P_THIS_ROUND(c) && lst[c] == L_ACQ) ->
        /* canceled, timed out, or of an old round: the node must not stay */
        if
        :: rc == A_OK ->
#ifndef MUTANT_NOSTALEDEL
            bg_delete(c, pfound[pi], gen[c])
#else
            skip
#endif
        :: else -> skip
        fi
    :: else ->
        if
        :: rc == A_OK ->
            node[c] = pfound[pi];
            tok[c] = pfound[pi] + 1;
            osid[c] = pown[pi];
            if
            :: gcin[c] == 0 -> evaluate(c)
            :: else -> skip /* the pipelined getChildren answers next */
            fi
#ifdef MUTANT_ECLOSED
        :: rc == A_CLOSED -> d_fail = A_CLOSED
#endif
        :: else ->
            /* ESESSIONLOST, ECONNLOSS, and ECLOSED (the handle of a session
             * being replaced was closed under the create): once connected */
            resume_later(c)
        fi
    fi;
    pph[pi] = P_NONE; pwait[pi] = 0; pgen[pi] = 0; patt[pi] = 0; prnd[pi] = 0;
    pguid[pi] = 0; pfound[pi] = 0; pown[pi] = 0
}

/* pcreate.c send_req: on the generation the create belongs to, or give up */
inline pc_send(c, ph) {
    if
    :: gen[c] != pgen[pi] -> d_pcfin = A_SESSIONLOST; d_pi = pi
    :: else -> pph[pi] = ph; send(c, K_PC, pfound[pi], patt[pi]); rn[si] = pi
    fi
}

#define FREE_PC(c) (pph[(c) * NP] == P_NONE -> (c) * NP : (pph[(c) * NP + 1] == P_NONE -> (c) * NP + 1 : NONE))

/* qengine.c zkc__qe_launch: a fresh guid, the protected create, and right behind it
 * the pipelined getChildren (gc_inflight reserved for it) */
inline do_launch(c) {
    pi = FREE_PC(c);
    assert(pi != NONE); /* else raise NP */
    creating[c] = 1;
    gcin[c]++;
    ngen[c] = gen[c];
    pguid[pi] = c * MAXN + cseq + 1; /* unique among c's creates that landed */
    pgen[pi] = gen[c];
    patt[pi] = att[c];
    prnd[pi] = rnd[c];
    pfound[pi] = NONE;
    pc_send(c, P_CREATE);
    send(c, K_GC, NONE, att[c])
}

/* qengine.c grant: the ownership check, then HELD */
inline grant(c) {
    if
#ifndef MUTANT_NOOWNER
    :: cst[c] == C_LOST ->
        /* zkc_session_id() is 0 between two sessions: never grant blind */
        resume_later(c)
    :: cst[c] != C_LOST && osid[c] != SID(c) ->
        clear_node(c);
        resume_later(c)
#endif
    :: else -> lst[c] = L_HELD; finish_acquire(c, A_OK)
    fi
}

/* qengine.c hook, called by announce() */
inline hook(c, h) {
    if
    :: lst[c] == L_HELD ->
        if
        :: h == H_LOST || (h == H_CONN && gen[c] != ngen[c]) -> lst[c] = L_LOST
        :: h == H_RECONN -> send(c, K_VF, node[c], att[c])
        :: else -> skip /* SUSPENDED: an event for the holder, no change */
        fi
    :: lst[c] == L_ACQ && (h == H_LOST || h == H_RECONN) -> resume_later(c)
    :: else -> skip
    fi
}

/* The server answers the head of c's queue, slot jj. */
inline srv_step(c) {
    pi = (rk[jj] == K_PC -> rn[jj] : 0);
    if
    :: RUNS(c, rg[jj], re[jj], rd[jj]) ->
        if
        :: !salive[SID(c)] -> rr[jj] = R_EXPIRED
        :: else ->
            rr[jj] = R_OK;
            if
            :: rk[jj] == K_PC && pph[pi] == P_CREATE ->
                rx[jj] = cseq; ry[jj] = SID(c); zcreate(SID(c), pguid[pi])
            :: rk[jj] == K_PC && pph[pi] == P_LIST ->
                rx[jj] = NONE;
                for (ti : 0 .. MAXN - 1) {
                    if
                    :: zn[ti] && zguid[ti] == pguid[pi] -> rx[jj] = ti
                    :: else -> skip
                    fi
                }
            :: rk[jj] == K_GC ->
                snapt = 0;
                for (ti : 0 .. MAXN - 1) {
                    if
                    :: zn[ti] -> snapt = snapt | (1 << ti)
                    :: else -> skip
                    fi
                }
                rsnap[jj] = snapt
            :: rk[jj] == K_WS ->
                if
                :: zn[rx[jj]] -> wnode[c] = rx[jj]; wgen[c] = gen[c]
                :: else -> rr[jj] = R_NONODE
                fi
            :: (rk[jj] == K_PC && pph[pi] == P_STAT) || rk[jj] == K_VF ->
                if
                :: zn[rx[jj]] -> ry[jj] = zown[rx[jj]]
                :: else -> rr[jj] = R_NONODE
                fi
            :: (rk[jj] == K_PC && pph[pi] == P_DEL) || rk[jj] == K_BG ->
                if
                :: zn[rx[jj]] -> zdelete(rx[jj])
                :: else -> rr[jj] = R_NONODE
                fi
            fi
        fi
    :: FLUSHED(c, rg[jj], re[jj], rd[jj]) ->
        /* a request that was on the wire may have landed: its reply is
         * what got lost (the lost create reply of CURATOR-45) */
        if
        :: !rd[jj] && rk[jj] == K_PC && pph[pi] == P_CREATE && salive[SIDG(c, rg[jj])] ->
            zcreate(SIDG(c, rg[jj]), pguid[pi])
        :: !rd[jj] && (rk[jj] == K_BG || (rk[jj] == K_PC && pph[pi] == P_DEL)) &&
           salive[SIDG(c, rg[jj])] && zn[rx[jj]] ->
            zdelete(rx[jj])
        :: true -> skip
        fi;
        rr[jj] = R_CONNLOSS
    :: CLOSED(c, rg[jj], rd[jj]) -> rr[jj] = R_CLOSING
    fi;
    printf("MSC: c%d server answers %d (phase %d, node %d) with %d\n", c, rk[jj], pph[pi], rx[jj], rr[jj]);
    /* off the server's queue, onto the completion queue */
    for (kk : c * NR .. c * NR + NR - 1) {
        if
        :: kk != jj && rk[kk] != 0 && rs[kk] == S_SENT -> ro[kk]--
        :: else -> skip
        fi
    }
    nsent[c]--;
    rs[jj] = S_ANS;
    ro[jj] = nans[c];
    nans[c]++
}

/* pcreate.c: the completions of the protected create's requests */
inline pc_completion(c) {
    pi = rn[jj];
    d_pi = pi;
    if
#ifndef MUTANT_ECLOSED
    :: rr[jj] == R_CONNLOSS || rr[jj] == R_CLOSING -> pwait[pi] = 1 /* wait_and_recover */
#else
    :: rr[jj] == R_CONNLOSS -> pwait[pi] = 1
    :: rr[jj] == R_CLOSING -> d_pcfin = A_CLOSED /* the code before issue 9 */
#endif
    :: rr[jj] == R_EXPIRED -> d_pcfin = A_SESSIONLOST
    :: else ->
        if
        :: pph[pi] == P_CREATE -> /* created */
            pfound[pi] = rx[jj]; pown[pi] = ry[jj]; d_pcfin = A_OK
        :: pph[pi] == P_LIST -> /* children_listed */
            if
            :: rx[jj] == NONE -> pc_send(c, P_CREATE) /* it never landed */
            :: else -> pfound[pi] = rx[jj]; pc_send(c, P_STAT)
            fi
        :: pph[pi] == P_STAT -> /* owner_checked */
            if
            :: rr[jj] == R_NONODE -> pfound[pi] = NONE; pc_send(c, P_CREATE)
#ifndef MUTANT_NOOWNER
            :: rr[jj] == R_OK && gen[c] != pgen[pi] -> d_pcfin = A_SESSIONLOST
            :: rr[jj] == R_OK && gen[c] == pgen[pi] && ry[jj] != SID(c) ->
                pc_send(c, P_DEL) /* our guid under another session */
#endif
            :: else -> pown[pi] = ry[jj]; d_pcfin = A_OK /* adopt */
            fi
        :: pph[pi] == P_DEL -> pfound[pi] = NONE; pc_send(c, P_CREATE) /* deleted_foreign */
        fi
    fi
}

/* The completion of slot jj, the head of c's completion queue. */
inline completion(c) {
    for (kk : c * NR .. c * NR + NR - 1) {
        if
        :: kk != jj && rk[kk] != 0 && rs[kk] == S_ANS -> ro[kk]--
        :: else -> skip
        fi
    }
    nans[c]--;
    printf("MSC: c%d completion of %d (phase %d, node %d): %d\n", c, rk[jj], pph[pi], rx[jj], rr[jj]);
    if
    :: rk[jj] == K_PC ->
        pc_completion(c);
        slot_free(jj)
    :: rk[jj] == K_GC -> /* children_done */
        if
        :: THIS_ROUND(c, jj) && gcin[c] > 0 -> gcin[c]--
        :: else -> skip
        fi;
        if
        :: !(THIS_ROUND(c, jj) && lst[c] == L_ACQ) || node[c] == NONE ->
            skip /* stale, or the create has not answered yet */
        :: else ->
            if
            :: rr[jj] == R_CONNLOSS || rr[jj] == R_EXPIRED || rr[jj] == R_CLOSING ->
                resume_later(c) /* transient() */
            :: rr[jj] == R_OK && ((rsnap[jj] >> node[c]) & 1) == 0 ->
                /* our node vanished while queued: queue again */
                clear_node(c);
                watching[c] = NONE;
                d_launch = 1
            :: else ->
                ah = NONE;
                for (ti : 0 .. MAXN - 1) {
                    if
                    :: ti < node[c] && ((rsnap[jj] >> ti) & 1) -> ah = ti
                    :: else -> skip
                    fi
                }
                if
                :: ah == NONE -> grant(c)
                :: else ->
                    /* set_sub, then arm_watch on the node directly ahead */
                    watching[c] = ah;
                    send(c, K_WS, ah, att[c])
                fi
            fi
        fi;
        slot_free(jj)
    :: rk[jj] == K_WS -> /* watch_set */
        if
        :: THIS_ROUND(c, jj) && lst[c] == L_ACQ ->
            if
            :: rr[jj] == R_NONODE ->
                /* it left before our watch landed: look again */
#ifndef MUTANT_NORECHECK
                watching[c] = NONE;
                if
                :: gcin[c] == 0 -> evaluate(c)
                :: else -> skip
                fi
#else
                skip
#endif
            :: rr[jj] == R_CONNLOSS || rr[jj] == R_EXPIRED || rr[jj] == R_CLOSING ->
                resume_later(c) /* transient() */
            :: else -> skip /* the watch is set */
            fi
        :: else -> skip
        fi;
        slot_free(jj)
    :: rk[jj] == K_VF -> /* verified */
        if
        :: ra[jj] == att[c] && lst[c] == L_HELD ->
            if
            :: rr[jj] == R_OK && ry[jj] == osid[c] -> skip /* RECONNECTED */
            :: (rr[jj] == R_OK && ry[jj] != osid[c]) || rr[jj] == R_NONODE ||
               rr[jj] == R_EXPIRED -> lst[c] = L_LOST
            :: else -> skip /* connection loss: the next RECONNECTED verifies */
            fi
        :: else -> skip
        fi;
        slot_free(jj)
    :: rk[jj] == K_BG -> /* bg_deleted */
        if
        :: rr[jj] == R_CONNLOSS -> rs[jj] = S_WAIT; ro[jj] = 0; rr[jj] = 0 /* bg_later */
        :: else -> slot_free(jj) /* bg_finish */
        fi
    fi
}

/* The end of every engine step: what the step's callback handed on. */
inline tail(c) {
    if
    :: d_hook != 0 -> dr = d_hook; d_hook = 0; hook(c, dr)
    :: else -> skip
    fi;
    if
    :: d_launch && lst[c] == L_ACQ -> d_launch = 0; do_launch(c)
    :: d_launch && lst[c] != L_ACQ -> d_launch = 0
    :: else -> skip
    fi;
    if
    :: d_pcfin != NONE -> dr = d_pcfin; d_pcfin = NONE; pi = d_pi; do_pc_finish(c, dr)
    :: else -> skip
    fi;
    if
    :: d_fail != NONE -> dr = d_fail; d_fail = NONE; do_fail(c, dr)
    :: else -> skip
    fi;
    dr = 0
}

/* ============================================ one client's threads */

/* For client c: the session manager thread (session.c), the ZooKeeper
 * client library's I/O and completion threads, and the server's handling
 * of c's session and requests. */
proctype engine(byte c)
{
end:
    do
    :: atomic {
        if
        /* ------------------------------------------ session manager */
        :: faults > 0 && up[c] && cst[c] == C_CONN ->
            /* the connection drops (a server dies, the network cuts) */
            faults--; up[c] = 0; le[c]++;
            printf("MSC: c%d link down\n", c)
        :: !up[c] && cst[c] == C_CONN ->
            /* the manager hears it: SUSPENDED, the local LOST timer starts */
            cst[c] = C_SUSP; d_hook = H_SUSP;
            printf("MSC: c%d SUSPENDED\n", c)
        :: !up[c] && cst[c] == C_SUSP && salive[SID(c)] ->
            /* back within the session timeout: RECONNECTED */
            up[c] = 1; cst[c] = C_CONN; d_hook = H_RECONN;
            printf("MSC: c%d RECONNECTED\n", c)
        :: !up[c] && cst[c] == C_SUSP ->
            /* the local LOST timer (manager_main), or a reconnect that hears
             * EXPIRED; the server may not have expired the session yet */
            cst[c] = C_LOST; d_hook = H_LOST;
            printf("MSC: c%d LOST\n", c)
        :: faults > 0 && salive[SID(c)] && cst[c] != C_LOST ->
            /* the server expires the session (the client is paused: GC,
             * SIGSTOP; or cut off for longer than the timeout) and closes
             * its connection */
            faults--; expire(SID(c));
            if
            :: up[c] -> up[c] = 0; le[c]++
            :: else -> skip
            fi;
            printf("MSC: c%d server expires session %d\n", c, SID(c))
        :: cst[c] == C_LOST ->
            /* close_handle, open_handle: a new session, CONNECTED */
            assert(gen[c] + 1 < GENS);
            gen[c]++; salive[SID(c)] = 1; up[c] = 1; cst[c] = C_CONN; d_hook = H_CONN;
            printf("MSC: c%d new session %d: CONNECTED\n", c, SID(c))
        :: salive[SID(c)] && cst[c] == C_LOST -> expire(SID(c));
            printf("MSC: c%d server expires abandoned session %d\n", c, SID(c))
        /* the server expires the sessions c abandoned */
        :: OLDG(c, 1) -> expire(SID(c) - 1); printf("MSC: c%d server expires old session %d\n", c, SID(c) - 1)
        :: OLDG(c, 2) -> expire(SID(c) - 2); printf("MSC: c%d server expires old session %d\n", c, SID(c) - 2)
        :: OLDG(c, 3) -> expire(SID(c) - 3); printf("MSC: c%d server expires old session %d\n", c, SID(c) - 3)

        /* --------------------------------------- watch event: on_watch */
        :: wev[c] != NONE && (up[c] || wevg[c] != gen[c]) ->
            printf("MSC: c%d watch event: node %d deleted\n", c, wev[c]);
            if
            :: wevg[c] == gen[c] && lst[c] == L_ACQ && watching[c] == wev[c] ->
                watching[c] = NONE;
                if
                :: gcin[c] == 0 -> evaluate(c)
                :: else -> skip
                fi
            :: else -> skip /* not what we wait on, or its handle is gone */
            fi;
            wev[c] = NONE; wevg[c] = 0

        /* ----------------------------------- qengine.c resume (one-shot) */
        :: rq[c] && cst[c] == C_CONN && up[c] ->
            printf("MSC: c%d resume()\n", c);
            rq[c] = 0;
            if
            :: lst[c] != L_ACQ -> skip /* nothing to continue */
#ifndef MUTANT_NOROUND
            :: lst[c] == L_ACQ && gen[c] != ngen[c] ->
                /* a new session: a new round at once, without waiting for
                 * the old round's replies */
                rnd[c]++;
                creating[c] = 0;
                gcin[c] = 0;
                clear_node(c);
                watching[c] = NONE;
                d_launch = 1
#endif
            :: else ->
                if
                :: creating[c] -> skip /* the protected create recovers by itself */
                :: !creating[c] && node[c] != NONE ->
                    if
                    :: gcin[c] == 0 -> evaluate(c)
                    :: else -> skip
                    fi
                :: else ->
                    /* our node died with the old session: queue again */
                    clear_node(c);
                    watching[c] = NONE;
                    d_launch = 1
                fi
            fi

        /* ------------------ pcreate.c after_reconnect (one-shot) */
        :: (pwait[c * NP] || pwait[c * NP + 1]) && cst[c] == C_CONN && up[c] ->
            pi = (pwait[c * NP] -> c * NP : c * NP + 1);
            d_pi = pi;
            printf("MSC: c%d pcreate after_reconnect\n", c);
            pwait[pi] = 0;
            if
#ifndef MUTANT_NOOWNER
            :: gen[c] != pgen[pi] -> d_pcfin = A_SESSIONLOST
#endif
            :: else -> pgen[pi] = gen[c]; pc_send(c, P_LIST) /* recover */
            fi

        /* ---------- the server answers the head of c's queue (session FIFO) */
        :: ANY_SLOT(SRV_READY, c) ->
            jj = NONE;
            for (kk : c * NR .. c * NR + NR - 1) {
                if
                :: SRV_READY(c, kk) -> jj = kk
                :: else -> skip
                fi
            }
            srv_step(c)

        /* ------------ the completion thread runs the head of its queue */
        :: ANY_SLOT(CPL_READY, c) ->
            jj = NONE;
            for (kk : c * NR .. c * NR + NR - 1) {
                if
                :: CPL_READY(c, kk) -> jj = kk
                :: else -> skip
                fi
            }
            completion(c)

        /* --------------------------------- queue.c bg_retry (one-shot) */
        :: ANY_SLOT(BG_READY, c) ->
            for (jj : c * NR .. c * NR + NR - 1) {
                if
                :: BG_READY(c, jj) && gen[c] != ra[jj] -> slot_free(jj) /* went with its session */
                :: BG_READY(c, jj) && gen[c] == ra[jj] -> slot_send(c, jj)
                :: else -> skip
                fi
            }
        fi;
        tail(c)
    }
    od
}

/* ================================================= the application */

/* zkc_lock_fenced_multi: a write behind a check op on our node, sent on
 * the session's current handle. A multi on an expired session, or without
 * a connection, does nothing. */
inline fenced_write(c) {
    atomic {
        if
        :: node[c] != NONE && (lst[c] == L_HELD || lst[c] == L_LOST) && up[c] &&
           cst[c] == C_CONN && salive[SID(c)] ->
            if
#ifndef MUTANT_NOFENCE
            :: zn[node[c]] ->
#else
            :: true ->
#endif
                /* accepted: the writer's node is live and the lowest, the
                 * one ZooKeeper's order makes the holder */
                assert(zn[node[c]]);
                for (ti : 0 .. MAXN - 1) {
                    assert(ti >= node[c] || !zn[ti])
                }
                /* and fencing tokens never go back */
                assert(tok[c] >= lasttok);
                lasttok = tok[c];
                printf("MSC: c%d write with token %d accepted\n", c, tok[c])
            :: else -> printf("MSC: c%d write rejected\n", c) /* ZKC_ENOTHELD */
            fi
        :: else -> skip
        fi
    }
}

proctype user(byte c)
{
    byte k, my, rc;

    do
    :: k < CYCLES ->
        /* zkc_lock_acquire(l, -1, &token): begin, launch */
        atomic { lst[c] != L_ACQ && FREE_PC(c) != NONE ->
            att[c]++;
            lst[c] = L_ACQ;
            creating[c] = 0;
            gcin[c] = 0;
            clear_node(c);
            watching[c] = NONE;
            my = att[c];
            printf("MSC: c%d acquire\n", c);
            do_launch(c) }
        if
        :: atomic { resatt[c] == my -> rc = resrc[c]; resatt[c] = NONE; resrc[c] = 0 }
        :: atomic { timeouts > 0 && att[c] == my && lst[c] == L_ACQ ->
            /* the wait times out: the attempt is abandoned */
            timeouts--;
            do_fail(c, A_TIMEDOUT);
            rc = A_TIMEDOUT; resatt[c] = NONE; resrc[c] = 0 }
        fi;
        if
        :: rc == A_OK ->
            printf("MSC: c%d HOLDS node %d, token %d\n", c, node[c], tok[c]);
            fenced_write(c);
            /* zkc_lock_release */
            atomic {
                if
                :: lst[c] == L_LOST -> lst[c] = L_IDLE; clear_node(c) /* quietly */
                :: lst[c] == L_HELD ->
                    lst[c] = L_IDLE;
                    att[c]++;
                    if
                    :: node[c] != NONE -> bg_delete(c, node[c], ngen[c]); clear_node(c)
                    :: else -> skip
                    fi
                fi
            }
        :: else ->
            /* nobody closed the session: an acquire without a timeout
             * must not end with ZKC_ECLOSED */
            assert(rc != A_CLOSED);
            skip
        fi;
        rc = 0; my = 0;
        k++
    :: else -> break
    od;
    done++
}

/* ================================================= properties */

#define HELDLIVE(i) (lst[i] == L_HELD && node[i] != NONE && zn[node[i]])
/* A holder connected on a live session holds a live node of that very
 * session (so nobody else can be granted). */
#define BELIEF(i) (!(lst[i] == L_HELD && cst[i] == C_CONN && up[i] && salive[SID(i)]) || \
                   (node[i] != NONE && zn[node[i]] && zown[node[i]] == SID(i)))
#define BUSY(c, j) (rk[j] != 0)
#define IDLE_CLIENT(i) (pph[(i) * NP] == P_NONE && pph[(i) * NP + 1] == P_NONE && \
                        !ANY_SLOT(BUSY, i))
/* node n belongs to the session client i is using (not one it abandoned) */
#define CUR(n, i) (zown[n] == SID(i) && cst[i] != C_LOST)
#if NC == 2
#define INVARIANT (!(HELDLIVE(0) && HELDLIVE(1)) && BELIEF(0) && BELIEF(1))
#define OWNED_BY_CURRENT(n) (CUR(n, 0) || CUR(n, 1))
#define QUIET (IDLE_CLIENT(0) && IDLE_CLIENT(1))
#elif NC == 3
#define INVARIANT (!(HELDLIVE(0) && HELDLIVE(1)) && !(HELDLIVE(0) && HELDLIVE(2)) && \
                   !(HELDLIVE(1) && HELDLIVE(2)) && BELIEF(0) && BELIEF(1) && BELIEF(2))
#define OWNED_BY_CURRENT(n) (CUR(n, 0) || CUR(n, 1) || CUR(n, 2))
#define QUIET (IDLE_CLIENT(0) && IDLE_CLIENT(1) && IDLE_CLIENT(2))
#else
#error "NC must be 2 or 3"
#endif
#define ALLDONE (done == NC && QUIET)

/* Mutual exclusion among live nodes, and the holders' belief, in every
 * state. */
active proctype monitor()
{
end:
    atomic { !INVARIANT -> assert(false) }
}

/* Once every client has finished and nothing is in flight: no orphan, no
 * node of a session still in use (those of abandoned sessions go when the
 * server expires them). A run that cannot get here ends in a state pan
 * reports as invalid (a deadlock). */
active proctype final()
{
    atomic {
        ALLDONE ->
        for (ti : 0 .. MAXN - 1) {
            assert(!(zn[ti] && OWNED_BY_CURRENT(ti)))
        }
    }
}

/* Progress: under weak fairness every run ends with every client done. */
ltl progress { <> (ALLDONE) }

init
{
    byte i;

    atomic {
        for (i : 0 .. NC - 1) {
            up[i] = 1;
            cst[i] = C_CONN;
            salive[SID(i)] = 1;
            node[i] = NONE;
            watching[i] = NONE;
            wnode[i] = NONE;
            wev[i] = NONE;
            resatt[i] = NONE
        }
        for (i : 0 .. NC - 1) {
            run engine(i);
            run user(i)
        }
    }
}
