/* Process helpers shared by the handler runner, the health checker and the
 * supervisor: PATH lookup, environment building, and running a command
 * under a guard process (below), so nothing it starts can outlive it.
 *
 * Guards are only ever reaped by pid, never with waitpid(-1): the agent's
 * components share one process and must not steal each other's children. */
#ifndef ZKA_PROC_H
#define ZKA_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Find `file` the way execvp would (PATH of the current environment, or
 * "/bin:/usr/bin" if unset); a name containing '/' is returned as is.
 * Returns a new string (free()) or NULL with errno set (ENOENT, EACCES,
 * ENOMEM). Done in the parent, before fork, so the child only execve()s. */
char *zka_proc_resolve(const char *file);

/* A NULL-terminated environment: the current environ, minus any variable
 * whose name is set in `extra` ("NAME=value" strings, n entries), plus
 * `extra`. Returns a new vector (free with zka_proc_free_strv) or NULL. */
char **zka_proc_env(char *const *extra, size_t n);
void zka_proc_free_strv(char **v);

/* ---------------------------------------------------------- a guarded child
 *
 * Every command the agent runs (handler, health check, supervised app) runs
 * under a guard: a small process forked from the agent that stays
 * single-threaded, makes itself a child subreaper, starts the command and
 * waits. Whatever the command starts -- also in a new session or process
 * group, also ignoring TERM, also after it exited itself -- stays below the
 * guard (orphans are reparented to it), so the guard can always find the
 * whole tree (a walk of /proc/<pid>/stat PPid links) and stop it:
 *   - the command exits: whatever it left running gets SIGTERM, SIGKILL after
 *     the grace; then the guard reports and exits;
 *   - SIGTERM to the guard (zka_child_stop), or the death of the agent
 *     thread that started it (PR_SET_PDEATHSIG, so also after SIGKILL of the
 *     agent): SIGTERM to the whole tree, SIGKILL after the grace;
 *   - SIGUSR1 to the guard (zka_child_kill): SIGKILL to the whole tree now.
 * The guard exits when it has no process left below it, after writing what
 * happened (the command's wait status, or the errno of a failed execve) to
 * a close-on-exec report pipe. If the guard itself is SIGKILLed, the command
 * dies with it (its parent-death signal is SIGKILL) and any leftover is
 * reparented to the agent, which kills and reaps it (zka_proc_reap_adopted). */
typedef struct zka_child {
    pid_t pid;     /* the guard's pid (its process group too) */
    pid_t app_pid; /* the command's pid (the guard's when unknown) */
    int pidfd;     /* readable when the guard exited, or -1 (then poll) */
    int report_fd;
    bool reaped;
} zka_child;

typedef struct zka_spawn_opts {
    int in_fd, out_fd, err_fd; /* the command's 0, 1, 2; -1 = /dev/null */
    int fd3;                   /* passed as descriptor 3, or -1 */
    int grace_ms;              /* SIGTERM -> SIGKILL for the tree; <= 0: 2000 */
} zka_spawn_opts;

/* zka_spawn_opts with every descriptor -1 and the default grace. */
void zka_spawn_opts_init(zka_spawn_opts *o);

/* Start `path` (argv, envp) under a guard. Only async-signal-safe calls
 * happen after fork. Returns 0 or -1 with errno set (nothing started). */
int zka_child_spawn(zka_child *c, const char *path, char *const argv[], char *const envp[],
                    const zka_spawn_opts *o);

/* Ask the guard to stop the whole tree: SIGTERM, SIGKILL after the grace. */
void zka_child_stop(zka_child *c);

/* Ask the guard to SIGKILL the whole tree now. */
void zka_child_kill(zka_child *c);

/* Has the guard exited (nothing of the command's tree is left)? Reaps it:
 * then returns 1 with the command's wait status in *wstatus and, when
 * execve failed, its errno in *exec_errno (else 0); returns 0 while it
 * runs. If wait is true, blocks until it exits. */
int zka_child_done(zka_child *c, bool wait, int *wstatus, int *exec_errno);

/* Close the descriptors (after zka_child_done returned 1). */
void zka_child_close(zka_child *c);

/* The agent process: kill (SIGKILL) and reap every child of this process
 * that is not a guard it started: leftovers reparented to it because their
 * guard was killed. Never call it in a process that has other children of
 * its own (tests). */
void zka_proc_reap_adopted(void);

/* Describe a wait status: "exit status 3", "killed by signal 9 (Killed)". */
void zka_proc_status_str(int wstatus, char *buf, size_t len);

/* Monotonic milliseconds. */
long long zka_now_ms(void);

#endif
