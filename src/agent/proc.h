/* Process helpers shared by the handler runner, the health checker and the
 * supervisor: PATH lookup, environment building, fork+execve into a new
 * process group, pidfds.
 *
 * Every child is started in its own process group (setpgid), so its group
 * id equals its pid, terminal signals (^C) do not reach it, and "the whole group" can be signalled
 * with kill(-pid, sig). Children are only ever reaped by pid or by their process group
 * (waitpid(pid) / waitpid(-pgid)), never with waitpid(-1): the agent's components share one process
 * and must not steal each other's children. */
#ifndef ZKA_PROC_H
#define ZKA_PROC_H

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

/* fork + execve(path, argv, envp) in a new process group. The child's stdin,
 * stdout and stderr become in_fd, out_fd, err_fd (-1 = /dev/null); every
 * other descriptor is closed; signal mask and dispositions are reset.
 * Returns the pid or -1 with errno set. If execve fails the child exits 127. */
pid_t zka_proc_spawn(const char *path, char *const argv[], char *const envp[], int in_fd,
                     int out_fd, int err_fd);

/* A pollable descriptor that becomes readable when `pid` exits (pidfd_open),
 * or -1 if the kernel has none (callers then poll with a short timeout). */
int zka_proc_pidfd(pid_t pid);

/* Reap zombies of process group `pgid` (grandchildren reparented to us as
 * subreaper) without blocking. */
void zka_proc_reap_group(pid_t pgid);

/* Describe a wait status: "exit status 3", "killed by signal 9 (Killed)". */
void zka_proc_status_str(int wstatus, char *buf, size_t len);

/* Monotonic milliseconds. */
long long zka_now_ms(void);

#endif
