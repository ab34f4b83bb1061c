/*
 * embed: the smallest program that embeds libzkcoord and campaigns for
 * leadership. Copy it as the starting point of your own.
 *
 *   usage: embed SERVERS PATH ID
 *   e.g.   embed 127.0.0.1:2181 /zkcoord/orders/leader orders-1
 *
 * It opens a session, joins the election at PATH as participant ID and
 * prints every connection-state change and election event, one line each,
 * until SIGINT or SIGTERM; then it leaves (its node is deleted) and exits.
 *
 * Things worth copying:
 *  - Callbacks run on the library's dispatcher thread: keep them short, or
 *    hand work to your own threads. They may call the library.
 *  - Act as leader only between ELECTED and DEMOTED, and pass the fencing
 *    token to whatever you write to, so it can refuse a stale leader.
 *  - Never close the session from a callback; stop from the main thread.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zkcoord/zkcoord.h>

static void on_state(zkc_session *s, zkc_conn_state state, void *user_data)
{
    (void)user_data;
    printf("connection %s (session 0x%llx)\n", zkc_conn_state_name(state),
           (unsigned long long)zkc_session_id(s));
    fflush(stdout);
}

static void on_election(zkc_election *e, const zkc_election_event *ev, void *user_data)
{
    const char *me = user_data;

    (void)e;
    switch (ev->type) {
    case ZKC_ELECTION_ELECTED:
        printf("elected: %s leads (fencing token %lld)\n", me, (long long)ev->token);
        break;
    case ZKC_ELECTION_DEMOTED:
        printf("demoted: %s stops leading (%s)\n", me, zkc_election_demote_reason_name(ev->reason));
        break;
    case ZKC_ELECTION_LEADER_CHANGED:
        printf("leader: %s\n", ev->leader_id ? ev->leader_id : "(nobody)");
        break;
    case ZKC_ELECTION_ERROR:
        printf("error: %s; not campaigning any more\n", zkc_strerror(ev->err));
        break;
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    zkc_session_opts so;
    zkc_election_opts eo;
    zkc_session *s = NULL;
    zkc_election *e = NULL;
    sigset_t stop_signals;
    int rc, sig;

    if (argc != 4) {
        fprintf(stderr, "usage: %s SERVERS PATH ID\n", argv[0]);
        return 2;
    }
    /* Block the stop signals before the library starts its threads (they
     * inherit the mask), then take them synchronously with sigwait(). */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    zkc_session_opts_init(&so);
    so.servers = argv[1];
    so.session_timeout_ms = 10000;
    rc = zkc_session_new(&s, &so);
    if (rc) {
        fprintf(stderr, "session: %s\n", zkc_strerror(rc));
        return 1;
    }
    zkc_session_add_listener(s, on_state, NULL);
    rc = zkc_session_wait_connected(s, 15000);
    if (rc) {
        fprintf(stderr, "connect: %s\n", zkc_strerror(rc));
        goto out;
    }

    zkc_election_opts_init(&eo);
    eo.id = argv[3];
    eo.on_suspend = ZKC_ELECTION_STEP_DOWN; /* the safe default, spelled out */
    eo.fn = on_election;
    eo.user_data = argv[3];
    rc = zkc_election_new(&e, s, argv[2], &eo);
    if (rc) {
        fprintf(stderr, "election: %s\n", zkc_strerror(rc));
        goto out;
    }

    /* The library does the work on its own threads; the main thread only
     * waits to be told to stop. */
    sigwait(&stop_signals, &sig);
    printf("signal %d: leaving\n", sig);

out:
    zkc_election_close(e); /* leaves the election: the node is deleted */
    zkc_session_close(s);
    return rc ? 1 : 0;
}
