/*
 * Local ZooKeeper servers for tests, benchmarks and scripts.
 *
 * zkh_start() runs one standalone server or an ensemble of JVMs from the
 * Debian package "zookeeper", each on fresh loopback ports with its data in a
 * private temporary directory, and returns once every server serves.
 *
 * Rules that hold for every function below:
 *
 *  - Servers are numbered from 0 to zkh_size() - 1; server i has myid i + 1.
 *  - Functions returning int return 0 on success (or a byte count), -1 on
 *    failure; the reason is printed on stderr prefixed "zkh: ".
 *  - Not thread-safe: call the harness from one thread. Servers are started
 *    with PR_SET_PDEATHSIG, which the kernel fires when the *thread* that
 *    forked them exits, so that thread must live as long as the cluster: use
 *    the main thread.
 *  - The harness reaps its servers with waitpid() on their pids. Do not call
 *    waitpid(-1, ...) or set SIGCHLD to SIG_IGN in a process that uses it.
 *  - A cluster not destroyed when the process calls exit() is destroyed by an
 *    atexit handler. A process that dies of a signal leaves no JVM behind (the
 *    death signal kills them); its temporary directory is removed by the next
 *    zkh_start() on the machine.
 *  - A child made with fork() never stops its parent's servers: zkh_destroy()
 *    and the atexit handler only free memory there.
 */
#ifndef ZKC_TESTS_HARNESS_H
#define ZKC_TESTS_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zkh_cluster zkh_cluster;

typedef struct zkh_opts {
    int tick_time_ms;           /* tickTime; default 100 */
    int min_session_timeout_ms; /* minSessionTimeout; 0 (default) means 2 * tick_time_ms */
    int max_session_timeout_ms; /* maxSessionTimeout; default 60000 */
    int quiet;                  /* non-zero: print errors only, no progress lines */
    /* Ensemble only, may be NULL (the default): route the quorum links
     * through something the caller controls, e.g. a tests/common/proxy.c
     * proxy, so a server can be partitioned from the others while its
     * clients stay connected to it. Called from zkh_start() for every
     * ordered pair (from != to) and for both links (election 0: quorum port,
     * 1: leader-election port) of every start attempt (ports change between
     * attempts), with the real 127.0.0.1 port of server `to`; it returns the
     * loopback port that server `from`'s zoo.cfg names for `to` (the real
     * one, or a proxy's), or -1 to fail the start. Each server's config then
     * differs from the others' in these ports only. */
    int (*quorum_route)(void *data, int from, int to, int election, int port);
    void *quorum_route_data;
    /* Extra JVM arguments (e.g. "-Dzookeeper.cnxTimeout=1000"), a
     * NULL-terminated array borrowed until zkh_destroy(); NULL = none. */
    const char *const *jvm_args;
} zkh_opts;

/* Fill *o with the defaults above. */
void zkh_opts_init(zkh_opts *o);

/* Start nservers servers (1: standalone ZooKeeperServerMain; 2 to 9: a
 * QuorumPeerMain ensemble) and wait up to 30 s until all serve: standalone
 * answers ruok with imok and srvr with "Mode: standalone"; every ensemble
 * member reports Mode leader or follower. A server that exits during start-up
 * (usually a port taken between choosing and binding it) makes the whole start
 * run again on new ports, up to 3 more times. opts may be NULL (defaults); it
 * is copied. On success *out is a new cluster the caller frees with
 * zkh_destroy(); on failure *out is untouched, nothing is left running and
 * the end of the failing server's log is printed. Call from the main thread
 * (see above). */
int zkh_start(zkh_cluster **out, int nservers, const zkh_opts *opts);

/* "127.0.0.1:p1,127.0.0.1:p2,..." for zookeeper_init(). Borrowed; valid until
 * zkh_destroy(). Ports never change, across restarts included. */
const char *zkh_connect_string(const zkh_cluster *c);

/* "127.0.0.1:p", the client address of server i, or NULL for a bad index.
 * Borrowed; valid until zkh_destroy(). */
const char *zkh_server_address(const zkh_cluster *c, int i);

/* Number of servers in the cluster. */
int zkh_size(const zkh_cluster *c);

/* Stop server i: SIGTERM (and SIGCONT, should it be paused), up to 5 s for it
 * to exit, then SIGKILL; it is reaped before returning. 0 also when it was not
 * running; -1 for a bad index. */
int zkh_stop_server(zkh_cluster *c, int i);

/* Start server i again, on the same ports and data directory, and wait up to
 * 30 s until it serves. For an ensemble member whose start does not give a
 * majority of running, unpaused members, serving is impossible, so this waits
 * only until it answers ruok; start the other members, then zkh_wait_serving().
 * -1 if it is already running, exits, or does not come up in time (it is left
 * running then; the end of its log is printed). */
int zkh_start_server(zkh_cluster *c, int i);

/* SIGSTOP server i and wait until the kernel reports it stopped. 0 also when
 * already paused; -1 when not running or it exited. */
int zkh_pause_server(zkh_cluster *c, int i);

/* SIGCONT a paused server i and wait until the kernel reports it continued. 0
 * also when not paused; -1 when not running or it exited. */
int zkh_resume_server(zkh_cluster *c, int i);

/* Wait up to timeout_ms until server i serves (standalone: ruok -> imok and
 * Mode standalone; ensemble member: Mode leader or follower). -1 on timeout,
 * or at once when the server is not running or exits meanwhile. */
int zkh_wait_serving(zkh_cluster *c, int i, int timeout_ms);

/* Send the four-letter word cmd (e.g. "srvr") to server i and read the reply
 * until the server closes, at most 5 s in all. The reply is stored in buf,
 * truncated to len - 1 bytes and NUL-terminated. Returns the bytes stored, or
 * -1 (bad index, len 0, connection refused, timeout: a paused server times
 * out). Prints nothing. */
int zkh_four_letter(const zkh_cluster *c, int i, const char *cmd, char *buf, size_t len);

/* The value of key (e.g. "zk_packets_received") in server i's mntr reply; the
 * integer part for a decimal value. -1 when the key is absent or mntr fails.
 * Prints nothing. */
long long zkh_mntr(const zkh_cluster *c, int i, const char *key);

/* As zkh_mntr(), from the first host:port of a connect string (a server the
 * harness did not start: the benchmarks' --servers). -1 on any failure. */
long long zkh_mntr_at(const char *connect, const char *key);

/* Pid of server i's JVM, 0 when the harness has stopped it or seen it exit, -1
 * for a bad index. */
pid_t zkh_server_pid(const zkh_cluster *c, int i);

/* Stop every server of c that is running (by pid; SIGTERM, then SIGKILL after
 * 5 s), remove its temporary directory and free c. NULL is a no-op. */
void zkh_destroy(zkh_cluster *c);

#ifdef __cplusplus
}
#endif

#endif /* ZKC_TESTS_HARNESS_H */
