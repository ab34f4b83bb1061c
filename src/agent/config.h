/* The agent's configuration: one JSON file, loaded and validated in full
 * before anything runs. Errors read like a compiler's:
 *
 *   zkcoord.json:12:15: member.port: expected an integer 1-65535, got "80a"
 *
 * naming the file, line and column (1-based, in characters) and the key path
 * ("handlers[2].timeout_ms"), and saying what was expected. Unknown keys are
 * errors, with a "did you mean" suggestion for near misses. Defaults are the
 * ones documented in man/zkcoord.8. */
#ifndef ZKA_CONFIG_H
#define ZKA_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "zkcoord/zkcoord.h"

/* Events a handler can subscribe to (names as in the config and in
 * ZKCOORD_EVENT). */
typedef enum zka_event {
    ZKA_EV_MEMBER_JOINED = 0,
    ZKA_EV_MEMBER_LEFT,
    ZKA_EV_MEMBER_UPDATED,
    ZKA_EV_MEMBERS_CHANGED,
    ZKA_EV_LEADER_CHANGED,
    ZKA_EV_ELECTED,
    ZKA_EV_DEMOTED,
    ZKA_EV_LOCK_ACQUIRED,
    ZKA_EV_LOCK_LOST,
    ZKA_EV_SUSPENDED,
    ZKA_EV_RECONNECTED,
    ZKA_EV_SESSION_LOST,
    ZKA_EV_DRAINED,       /* our drain note appeared (zkcoordctl drain), after any demotion */
    ZKA_EV_UNDRAINED,     /* it went away */
    ZKA_EV_ITEM_ASSIGNED, /* a work item is ours: its claim is held (work.items) */
    ZKA_EV_ITEM_REVOKED,  /* a work item is no longer ours (its process already stopped) */
    ZKA_EV_COUNT
} zka_event;

/* "member_joined", ...; NULL for an out-of-range value. */
const char *zka_event_name(zka_event ev);
/* The event named `name`, or -1. */
int zka_event_from_name(const char *name);

typedef struct zka_endpoint {
    char *name;
    char *host;
    int port;
} zka_endpoint;

typedef enum zka_health_kind {
    ZKA_HEALTH_NONE = 0, /* no health section: always healthy */
    ZKA_HEALTH_ARGS,     /* run argv: exit 0 = pass */
    ZKA_HEALTH_TCP       /* connect to host:port */
} zka_health_kind;

typedef struct zka_health_cfg {
    zka_health_kind kind;
    char **args; /* NULL-terminated (ARGS) */
    char *tcp_host;
    int tcp_port;
    int interval_ms; /* 2000 */
    int timeout_ms;  /* 1000 */
    int rise;        /* 2 */
    int fall;        /* 3 */
} zka_health_cfg;

typedef enum zka_on_suspend { ZKA_SUSPEND_STEP_DOWN = 0, ZKA_SUSPEND_WAIT } zka_on_suspend;

typedef struct zka_lock_cfg {
    char *name;
    char *path; /* full ZooKeeper path; default <root>/<cluster>/locks/<name> */
    bool hold;  /* default true: the agent acquires it and keeps it */
} zka_lock_cfg;

typedef struct zka_handler_cfg {
    unsigned events;         /* bit (1u << zka_event) per subscribed event */
    char **args;             /* NULL-terminated, or NULL when `shell` is used */
    char *shell;             /* run as /bin/sh -c SHELL, or NULL */
    int timeout_ms;          /* 10000 */
    size_t max_output_bytes; /* 65536 */
} zka_handler_cfg;

typedef enum zka_while {
    ZKA_WHILE_LEADER = 0,
    ZKA_WHILE_MEMBER,
    ZKA_WHILE_LOCK,
    ZKA_WHILE_ITEM /* one app per held work item (work.items / work.partitions) */
} zka_while;
typedef enum zka_restart {
    ZKA_RESTART_ON_FAILURE = 0,
    ZKA_RESTART_ALWAYS,
    ZKA_RESTART_NEVER
} zka_restart;

typedef struct zka_supervise_cfg {
    bool enabled; /* a supervise section is present */
    char **args;  /* NULL-terminated */
    zka_while when;
    char *lock; /* lock name with ZKA_WHILE_LOCK */
    zka_restart restart;
    int restart_delay_ms; /* 1000 */
    int stop_grace_ms;    /* 5000 */
    char **env;           /* "NAME=value", n_env of them */
    size_t n_env;
} zka_supervise_cfg;

/* The work section (issue 12): this agent's capacity, the task handler
 * it runs submitted tasks with, and the work items it makes sure exist and
 * takes part in the assignment of (src/agent/work.h). */
typedef struct zka_work_cfg {
    bool enabled;       /* a work section is present */
    bool items_enabled; /* "items" or "partitions" given: take part in the item assignment */
    char **items;       /* item names, n_items of them ("partitions": N gives p0..p<N-1>) */
    char **item_specs;  /* the spec of each (NULL: empty), n_items of them */
    size_t n_items;
    int capacity;        /* 1; also published as member metadata "capacity" */
    bool tasks;          /* a tasks handler is configured: run submitted tasks */
    char **task_args;    /* NULL-terminated argv of the task handler */
    int task_timeout_ms; /* 60000: killed after it (status 124) */
    char **task_env;     /* "NAME=value", n_task_env of them */
    size_t n_task_env;
} zka_work_cfg;

typedef struct zka_config {
    char *file; /* as given to zka_config_load */
    struct {
        char *servers;          /* "127.0.0.1:2181" */
        int session_timeout_ms; /* 10000 */
        char *root;             /* "/zkcoord" */
        char *auth_scheme;      /* "digest" or NULL (no auth) */
        char *credentials_file; /* as written in the config */
        char *digest_user;      /* read from credentials_file */
        char *digest_password;
    } zookeeper;
    char *cluster;
    struct {
        bool registers; /* a member section is present: register and may campaign */
        char *id;       /* default: hostname */
        char *host;     /* default: hostname */
        int port;
        zka_endpoint *endpoints;
        size_t n_endpoints;
        json_t *metadata; /* object (own reference); empty object by default */
        int shard;        /* 0 */
    } member;
    zka_health_cfg health;
    struct {
        bool enabled;              /* false */
        zka_on_suspend on_suspend; /* step_down */
    } election;
    zka_lock_cfg *locks;
    size_t n_locks;
    zka_handler_cfg *handlers;
    size_t n_handlers;
    zka_supervise_cfg supervise;
    struct {
        zkc_log_level level; /* info */
        bool syslog;         /* false */
    } log;
    struct {
        bool enabled; /* a metrics section is present */
        char *listen; /* as written: "127.0.0.1:9431" by default */
        char *host;   /* the address part, an IP literal without brackets */
        int port;     /* 1-65535 */
        bool ipv6;    /* host is an IPv6 literal */
    } metrics;
    zka_work_cfg work;
} zka_config;

typedef struct zka_config_error {
    int line, column; /* 0 when the error has no position (unreadable file) */
    char key[256];    /* key path, "" when none */
    char text[1024];  /* the whole message: "FILE:LINE:COL: KEY: what was expected" */
} zka_config_error;

/* Load and validate `file`. On success *out is a new config (free with
 * zka_config_free); on failure *out is untouched and `err` (may be NULL)
 * holds the first error. Also reads and checks the credentials file.
 * Errors: ZKC_EINVAL (invalid config), ZKC_ESYS (cannot read the file),
 * ZKC_ENOMEM. */
int zka_config_load(const char *file, zka_config **out, zka_config_error *err);

/* As zka_config_load, from a string; `name` is used in messages and to
 * resolve a relative credentials_file (relative to its directory). */
int zka_config_load_string(const char *text, const char *name, zka_config **out,
                           zka_config_error *err);

void zka_config_free(zka_config *c);

/* Read a digest credentials file: one line "user:password". Refused unless
 * owned by the calling user (real or effective uid) or root, and neither
 * world-accessible nor group-writable. Shared by the agent's
 * zookeeper.auth.credentials_file and zkcoordctl --auth-file. On success
 * *user and *password are new strings (free; wipe the password first).
 * Errors: ZKC_EINVAL (the reason, naming `path`, in `why`), ZKC_ENOMEM. */
int zka_credentials_read(const char *path, char **user, char **password, char *why, size_t why_len);

/* The warning to log once at startup when `c` has no ZooKeeper auth (every
 * node then open to every client), or NULL when auth is configured. */
const char *zka_config_security_warning(const zka_config *c);

/* What a reload changes (bits of zka_config_diff()). */
enum {
    ZKA_DIFF_ZOOKEEPER = 1 << 0, /* servers, timeout, root, auth: needs a new session */
    ZKA_DIFF_IDENTITY = 1 << 1,  /* cluster or member id / presence: re-register */
    ZKA_DIFF_PAYLOAD = 1 << 2,   /* host, port, endpoints, metadata, shard: update data */
    ZKA_DIFF_HEALTH = 1 << 3,
    ZKA_DIFF_ELECTION = 1 << 4,
    ZKA_DIFF_LOCKS = 1 << 5,
    ZKA_DIFF_HANDLERS = 1 << 6,
    ZKA_DIFF_SUPERVISE = 1 << 7,
    ZKA_DIFF_LOG = 1 << 8,
    ZKA_DIFF_METRICS = 1 << 9, /* the metrics section: restart the endpoint */
    ZKA_DIFF_WORK = 1 << 10    /* the work section's task handler: restart the worker */
};

/* Bitmask of the parts that differ between `a` and `b` (0: nothing). */
unsigned zka_config_diff(const zka_config *a, const zka_config *b);

/* True if two handler entries are identical (used to keep a handler's state
 * across a reload). */
bool zka_handler_cfg_equal(const zka_handler_cfg *a, const zka_handler_cfg *b);

#endif
