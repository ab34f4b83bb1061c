/* Loopback TCP proxy for fault-injection tests: see proxy.h. One thread
 * polls the listening socket, a wake-up pipe and every connection pair.
 * Both directions are followed frame by frame (ZooKeeper frames: a 4-byte
 * big-endian length, then the body) so that a reply can be reordered: the
 * client->server bytes are forwarded as they come while their request
 * headers are noted; the server->client bytes are forwarded a whole frame
 * at a time.
 * Every descriptor is close-on-exec: a copy inherited by a child process
 * would keep a "cut" connection open at the other end. */
#include "common/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Self-contained (no library-private header): the fault suite links this
 * file and must keep building whatever the library's internals become. */
static void cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec += 1;
        ts->tv_nsec -= 1000000000L;
    }
}

#define MAX_PAIRS 64

/* ZooKeeper's special xids (zookeeper.c): replies with these are handled
 * apart from the queue of pending requests. */
#define XID_WATCH (-1)
#define XID_PING  (-2)
#define OP_CLOSE  (-11)

/* Follows a byte stream frame by frame without holding it: the first
 * bytes of each frame (length + RequestHeader {xid, type}) are kept. */
struct scan {
    unsigned char head[12];
    int have;           /* bytes of head[] filled */
    unsigned long left; /* body bytes of the current frame not yet seen */
    int reported;
    long frames; /* frames complete so far; frame 0 is the ConnectRequest */
    long reqs;   /* requests with an ordinary (positive) xid seen so far */
};

/* Server->client. Passed through as they come (only the frame boundaries
 * are followed) unless a reorder waits for a reply on this connection:
 * then whole frames are held in d until complete. A stream that is not
 * ZooKeeper's client protocol (the quorum links of the fault suite go
 * through proxies too) is never armed, so never held. */
struct sbuf {
    unsigned char lh[4]; /* the current frame's length, hn bytes of it */
    int hn;
    unsigned long left; /* body bytes of the current frame still to pass */
    unsigned char *d;   /* held bytes, from a frame boundary on */
    size_t len, cap;
    long frames; /* frames complete; frame 0 is the ConnectResponse */
};

struct pair {
    int client;
    int server; /* -1 once the server closed a held connection */
    struct scan up;
    struct sbuf down;
    int held; /* a hold keeps down.d (from the chosen reply on) back */
};

struct tu_proxy {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int listen_fd;
    int wake[2];
    struct sockaddr_in target;
    char address[32];
    pthread_t thread;

    /* under mu */
    int stopping;
    int cut_now;
    int arm_min; /* 0 = not armed */
    int cuts;    /* armed cuts done */
    int blocked;
    int blackhole;
    int accepted;
    int ro_op;       /* reorder armed for this opcode; 0 any; -1 not armed */
    int ro_fd;       /* client fd of the chosen request; -1 none chosen yet */
    int32_t ro_xid;  /* its xid */
    int reorders;    /* reorders done */
    int ro_swaps;    /* of which swaps (the others rewrote the xid) */
    long ro_reqs_at; /* the chosen request's rank in its connection's reqs */
    int ro_behind;   /* requests sent after it, pending at the last reorder */
    int ro_hold;     /* the armed choice is a hold (tu_proxy_hold_reply) */
    int holding;     /* a pair is held: 1, or 0 (not yet, released, gone) */
    int rel_pending; /* a release asked of the thread */
    int rel_err;     /* the err it writes into the held reply */
    int rel_rc;      /* its result: 0 delivered, -1 nothing held */
    int srv_closed;  /* the server closed the held connection */

    /* proxy thread only */
    struct pair pairs[MAX_PAIRS];
    int npairs;
};

static void poke(tu_proxy *p)
{
    char c = 1;
    ssize_t n = write(p->wake[1], &c, 1);

    (void)n;
}

static void close_pair(tu_proxy *p, int i)
{
    pthread_mutex_lock(&p->mu);
    if (p->ro_op >= 0 && p->ro_fd == p->pairs[i].client)
        p->ro_fd = -1; /* its reply will never come: pick the next request */
    if (p->pairs[i].held) {
        p->holding = 0; /* a release finds nothing */
        pthread_cond_broadcast(&p->cond);
    }
    pthread_mutex_unlock(&p->mu);
    close(p->pairs[i].client);
    if (p->pairs[i].server >= 0)
        close(p->pairs[i].server);
    free(p->pairs[i].down.d);
    p->pairs[i] = p->pairs[--p->npairs];
}

static void close_all(tu_proxy *p)
{
    while (p->npairs > 0)
        close_pair(p, p->npairs - 1);
}

static int write_all(int fd, const char *buf, ssize_t n)
{
    while (n > 0) {
        /* a socket the peer closed: EPIPE, not SIGPIPE */
        ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += w;
        n -= w;
    }
    return 0;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

static void put_be32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

/* A request header seen going to the server: choose it for an armed
 * reorder if it fits. Requests with a special xid (ping, auth, set watches)
 * are answered out of band, and the close request's reply ends the handle:
 * neither can be reordered. */
static void request_seen(tu_proxy *p, int client_fd, struct scan *sc)
{
    int32_t xid;
    int32_t op;

    if (sc->frames == 0 || sc->have < 12)
        return; /* the ConnectRequest, or a frame too short for a header */
    xid = (int32_t)be32(sc->head + 4);
    op = (int32_t)be32(sc->head + 8);
    if (xid > 0)
        sc->reqs++;
    pthread_mutex_lock(&p->mu);
    if (p->ro_op >= 0 && p->ro_fd < 0 && xid > 0 && op != OP_CLOSE &&
        (p->ro_op == 0 || p->ro_op == op)) {
        p->ro_fd = client_fd;
        p->ro_xid = xid;
        p->ro_reqs_at = sc->reqs;
    }
    pthread_mutex_unlock(&p->mu);
}

static void scan_feed(tu_proxy *p, int client_fd, struct scan *sc, const unsigned char *b, size_t n)
{
    while (n > 0) {
        size_t k;
        if (sc->have < 4) {
            sc->head[sc->have++] = *b++;
            n--;
            if (sc->have == 4)
                sc->left = be32(sc->head);
        } else if (sc->have < 12 && sc->left > 0) {
            k = (size_t)(12 - sc->have);
            if (k > sc->left)
                k = sc->left;
            if (k > n)
                k = n;
            memcpy(sc->head + sc->have, b, k);
            sc->have += (int)k;
            sc->left -= k;
            b += k;
            n -= k;
        } else {
            k = sc->left < n ? sc->left : n;
            sc->left -= k;
            b += k;
            n -= k;
        }
        if (sc->have >= 4 && !sc->reported && (sc->have == 12 || sc->left == 0)) {
            request_seen(p, client_fd, sc);
            sc->reported = 1;
        }
        if (sc->have >= 4 && sc->left == 0) {
            sc->have = 0;
            sc->reported = 0;
            sc->frames++;
        }
    }
}

/* Length of the complete frame at b (n bytes available), or 0. */
static size_t frame_at(const unsigned char *b, size_t n)
{
    uint32_t len;

    if (n < 4)
        return 0;
    len = be32(b);
    return n - 4 >= len ? 4 + (size_t)len : 0;
}

/* The reply frame at b (size f) is the chosen one: make the client meet it
 * out of order. When the next reply is already here and is an ordinary one
 * (not a watch event or a ping, which the client takes out of band), swap
 * the two; otherwise give this one an xid no request has. Either way the
 * client's next pending request does not match the reply it reads. Returns
 * the bytes from b on that are ready to forward. */
static size_t reorder(tu_proxy *p, unsigned char *b, size_t f, size_t avail)
{
    size_t g = frame_at(b + f, avail - f);
    int swapped = 0;

    if (g >= 8 && (int32_t)be32(b + f + 4) > 0) {
        unsigned char *tmp = malloc(f);
        if (tmp) {
            memcpy(tmp, b, f);
            memmove(b, b + f, g);
            memcpy(b + g, tmp, f);
            free(tmp);
            swapped = 1;
        }
    }
    if (!swapped) /* a positive xid, never the one the client waits for */
        put_be32(b + 4, (be32(b + 4) ^ 0x40000000u) & 0x7fffffffu);
    pthread_mutex_lock(&p->mu);
    p->ro_op = -1;
    p->ro_fd = -1;
    p->reorders++;
    p->ro_swaps += swapped;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    return swapped ? f + g : f; /* the bytes now ready to go */
}

/* 1 when a reorder waits for a reply on pr's connection. */
static int armed_for(tu_proxy *p, const struct pair *pr)
{
    int armed;

    pthread_mutex_lock(&p->mu);
    armed = p->ro_op >= 0 && p->ro_fd == pr->client;
    pthread_mutex_unlock(&p->mu);
    return armed;
}

/* Held: append, then forward every complete frame (the chosen reply
 * reordered); a partial frame stays for the rest. -1: the pair is dead. */
static int hold_feed(tu_proxy *p, struct pair *pr, const unsigned char *b, size_t n)
{
    struct sbuf *d = &pr->down;
    size_t off = 0, f;

    if (n > 0 && d->len + n > d->cap) {
        size_t cap = d->cap ? d->cap : 65536;
        unsigned char *nd;
        while (cap < d->len + n)
            cap *= 2;
        nd = realloc(d->d, cap);
        if (!nd)
            return -1;
        d->d = nd;
        d->cap = cap;
    }
    if (n > 0) {
        memcpy(d->d + d->len, b, n);
        d->len += n;
    }
    while (!pr->held && (f = frame_at(d->d + off, d->len - off)) > 0) {
        int hit = 0, hold = 0;
        if (d->frames > 0 && f >= 8) {
            int32_t xid = (int32_t)be32(d->d + off + 4);
            pthread_mutex_lock(&p->mu);
            hit = p->ro_op >= 0 && p->ro_fd == pr->client && p->ro_xid == xid;
            hold = hit && p->ro_hold;
            if (hold) { /* kept from here on until tu_proxy_release_held() */
                p->ro_op = -1;
                p->ro_fd = -1;
                p->holding = 1;
                p->srv_closed = 0;
                pthread_cond_broadcast(&p->cond);
            }
            pthread_mutex_unlock(&p->mu);
        }
        if (hold) {
            pr->held = 1;
            break;
        }
        if (hit) {
            size_t done;
            /* The server answers in order: every request sent after the
             * chosen one is still pending at the client. */
            pthread_mutex_lock(&p->mu);
            p->ro_behind = (int)(pr->up.reqs - p->ro_reqs_at);
            pthread_mutex_unlock(&p->mu);
            done = reorder(p, d->d + off, f, d->len - off);
            if (done != f)
                d->frames++; /* swapped: two frames go */
            f = done;
        }
        off += f;
        d->frames++;
    }
    if (off > 0) {
        if (write_all(pr->client, (const char *)d->d, (ssize_t)off) != 0)
            return -1;
        memmove(d->d, d->d + off, d->len - off);
        d->len -= off;
    }
    return 0;
}

/* Proxy thread: a release was asked. The held reply (the first held
 * frame: length, then ReplyHeader {xid, zxid, err}) gets the err asked
 * for, every complete held frame goes to the client, and when the server
 * has closed the connection meanwhile the client's side is closed after
 * them, as the server's close would have followed its replies. */
static void release_held(tu_proxy *p)
{
    int i, err, rc = -1;

    pthread_mutex_lock(&p->mu);
    err = p->rel_err;
    pthread_mutex_unlock(&p->mu);
    for (i = 0; i < p->npairs; i++) {
        struct pair *pr = &p->pairs[i];
        if (!pr->held)
            continue;
        if (pr->down.len >= 20)
            put_be32(pr->down.d + 16, (uint32_t)err);
        pr->held = 0;
        pthread_mutex_lock(&p->mu);
        p->holding = 0;
        pthread_mutex_unlock(&p->mu);
        rc = hold_feed(p, pr, NULL, 0);
        if (rc != 0 || pr->server < 0)
            close_pair(p, i);
        rc = rc != 0 ? -1 : 0;
        break;
    }
    pthread_mutex_lock(&p->mu);
    p->rel_pending = 0;
    p->rel_rc = rc;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
}

/* Server->client bytes: pass them through, following frame boundaries;
 * from the first boundary at which a reorder waits for a reply here, hold
 * them (hold_feed) until the held frames are all gone. -1: the pair is
 * dead. */
static int down_feed(tu_proxy *p, struct pair *pr, const unsigned char *b, size_t n)
{
    struct sbuf *d = &pr->down;
    int armed = armed_for(p, pr); /* only this thread arms a pair */
    size_t i = 0, j;

    while (i < n) {
        if (d->len > 0 || (armed && d->hn == 0 && d->left == 0))
            return hold_feed(p, pr, b + i, n - i); /* held frames end at a boundary */
        for (j = i; j < n;) {
            if (d->hn < 4) {
                d->lh[d->hn++] = b[j++];
                if (d->hn == 4)
                    d->left = be32(d->lh);
            } else {
                size_t k = d->left < n - j ? d->left : n - j;
                j += k;
                d->left -= k;
            }
            if (d->hn == 4 && d->left == 0) {
                d->hn = 0;
                d->frames++;
                if (armed)
                    break;
            }
        }
        if (write_all(pr->client, (const char *)b + i, (ssize_t)(j - i)) != 0)
            return -1;
        i = j;
    }
    return 0;
}

static void accept_one(tu_proxy *p)
{
    int c = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC), s, blocked;

    if (c < 0)
        return;
    pthread_mutex_lock(&p->mu);
    blocked = p->blocked;
    p->accepted++;
    pthread_mutex_unlock(&p->mu);
    if (blocked || p->npairs == MAX_PAIRS) {
        close(c);
        return;
    }
    s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&p->target, sizeof(p->target)) != 0) {
        if (s >= 0)
            close(s);
        close(c);
        return;
    }
    memset(&p->pairs[p->npairs], 0, sizeof(p->pairs[p->npairs]));
    p->pairs[p->npairs].client = c;
    p->pairs[p->npairs].server = s;
    p->npairs++;
}

static void *proxy_main(void *arg)
{
    tu_proxy *p = arg;
    struct pollfd fds[2 + 2 * MAX_PAIRS];
    char buf[65536];

    for (;;) {
        int i, n = 0, cut = 0, drop, polled, release;

        pthread_mutex_lock(&p->mu);
        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        if (p->cut_now || p->blocked) {
            p->cut_now = 0;
            cut = 1;
        }
        drop = p->blackhole;
        release = p->rel_pending;
        pthread_mutex_unlock(&p->mu);
        if (cut)
            close_all(p);
        if (release)
            release_held(p);

        fds[n].fd = p->wake[0];
        fds[n++].events = POLLIN;
        fds[n].fd = p->listen_fd;
        fds[n++].events = POLLIN;
        /* A blackhole leaves the bytes where they are: TCP keeps them, so
         * the streams resume intact when it ends, as after a real outage
         * that no timeout noticed. Dropping bytes would corrupt a stream,
         * which TCP never does. */
        for (i = 0; i < p->npairs && !drop; i++) {
            fds[n].fd = p->pairs[i].client;
            fds[n++].events = POLLIN;
            fds[n].fd = p->pairs[i].server;
            fds[n++].events = POLLIN;
        }
        /* pairs accepted below have no entry in fds yet (nor does any
         * pair while a blackhole holds them) */
        polled = drop ? 0 : p->npairs;
        if (poll(fds, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[0].revents) {
            ssize_t r = read(p->wake[0], buf, sizeof(buf));
            (void)r;
            continue; /* commands first: the pair list may change */
        }
        if (fds[1].revents & POLLIN)
            accept_one(p);
        for (i = polled - 1; i >= 0; i--) {
            struct pollfd *cf = &fds[2 + 2 * i], *sf = &fds[3 + 2 * i];
            int dead = 0, fire = 0;
            if (i >= p->npairs)
                continue;
            if (cf->revents) {
                ssize_t r = read(p->pairs[i].client, buf, sizeof(buf));
                if (r <= 0) {
                    dead = 1;
                } else if (p->pairs[i].server < 0) {
                    /* held, the server gone: the client's pings go nowhere */
                } else if (write_all(p->pairs[i].server, buf, r) != 0) {
                    dead = 1;
                } else {
                    scan_feed(p, p->pairs[i].client, &p->pairs[i].up, (unsigned char *)buf,
                              (size_t)r);
                    pthread_mutex_lock(&p->mu);
                    if (p->arm_min > 0 && r >= p->arm_min) {
                        p->arm_min = 0;
                        p->cuts++;
                        fire = 1;
                        pthread_cond_broadcast(&p->cond);
                    }
                    pthread_mutex_unlock(&p->mu);
                }
            }
            if (fire) {
                /* The request is in the server's socket buffer; its reply
                 * will find the client side gone. */
                close_all(p);
                break;
            }
            if (!dead && p->pairs[i].server >= 0 && sf->revents) {
                ssize_t r = read(p->pairs[i].server, buf, sizeof(buf));
                if (r <= 0 && p->pairs[i].held) {
                    /* The server closed a held connection: the client
                     * hears of it after the held replies, at the release. */
                    close(p->pairs[i].server);
                    p->pairs[i].server = -1;
                    pthread_mutex_lock(&p->mu);
                    p->srv_closed = 1;
                    pthread_cond_broadcast(&p->cond);
                    pthread_mutex_unlock(&p->mu);
                } else if (r <= 0 ||
                           down_feed(p, &p->pairs[i], (unsigned char *)buf, (size_t)r) != 0) {
                    dead = 1;
                }
            }
            if (dead)
                close_pair(p, i);
        }
    }
    close_all(p);
    return NULL;
}

int tu_proxy_start(tu_proxy **out, const char *target)
{
    tu_proxy *p = calloc(1, sizeof(*p));
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    char host[64];
    const char *colon = strrchr(target, ':');
    int one = 1;

    if (!p || !colon || (size_t)(colon - target) >= sizeof(host)) {
        free(p);
        fprintf(stderr, "proxy: bad target '%s'\n", target);
        return -1;
    }
    memcpy(host, target, (size_t)(colon - target));
    host[colon - target] = '\0';
    p->target.sin_family = AF_INET;
    p->target.sin_port = htons((unsigned short)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &p->target.sin_addr) != 1)
        goto fail_free;
    p->ro_op = -1;
    p->ro_fd = -1;
    pthread_mutex_init(&p->mu, NULL);
    cond_init_monotonic(&p->cond);
    if (pipe2(p->wake, O_CLOEXEC) != 0)
        goto fail_sync;
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->listen_fd < 0)
        goto fail_pipe;
    setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(p->listen_fd, 64) != 0 ||
        getsockname(p->listen_fd, (struct sockaddr *)&a, &alen) != 0)
        goto fail_sock;
    snprintf(p->address, sizeof(p->address), "127.0.0.1:%d", ntohs(a.sin_port));
    if (pthread_create(&p->thread, NULL, proxy_main, p) != 0)
        goto fail_sock;
    *out = p;
    return 0;

fail_sock:
    close(p->listen_fd);
fail_pipe:
    close(p->wake[0]);
    close(p->wake[1]);
fail_sync:
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
fail_free:
    fprintf(stderr, "proxy: cannot start towards %s: %s\n", target, strerror(errno));
    free(p);
    return -1;
}

const char *tu_proxy_address(const tu_proxy *p)
{
    return p->address;
}

void tu_proxy_cut(tu_proxy *p)
{
    pthread_mutex_lock(&p->mu);
    p->cut_now = 1;
    pthread_mutex_unlock(&p->mu);
    poke(p);
}

void tu_proxy_cut_after_request(tu_proxy *p, int min_bytes)
{
    pthread_mutex_lock(&p->mu);
    p->arm_min = min_bytes > 0 ? min_bytes : 1;
    pthread_mutex_unlock(&p->mu);
    poke(p);
}

int tu_proxy_wait_cut(tu_proxy *p, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&p->mu);
    while (p->arm_min > 0) {
        if (pthread_cond_timedwait(&p->cond, &p->mu, &ts) == ETIMEDOUT) {
            rc = p->arm_min > 0 ? -1 : 0;
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void tu_proxy_reorder_reply(tu_proxy *p, int op)
{
    pthread_mutex_lock(&p->mu);
    p->ro_op = op < 0 ? -1 : op;
    p->ro_fd = -1;
    p->ro_hold = 0;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
}

int tu_proxy_wait_reorder(tu_proxy *p, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&p->mu);
    while (p->ro_op >= 0)
        if (pthread_cond_timedwait(&p->cond, &p->mu, &ts) == ETIMEDOUT) {
            rc = p->ro_op >= 0 ? -1 : 0;
            break;
        }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int tu_proxy_reorders(tu_proxy *p, int *swaps, int *behind)
{
    int n;

    pthread_mutex_lock(&p->mu);
    n = p->reorders;
    if (swaps)
        *swaps = p->ro_swaps;
    if (behind)
        *behind = p->ro_behind;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void tu_proxy_hold_reply(tu_proxy *p, int op)
{
    pthread_mutex_lock(&p->mu);
    p->ro_op = op < 0 ? -1 : op;
    p->ro_fd = -1;
    p->ro_hold = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
}

int tu_proxy_wait_held(tu_proxy *p, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&p->mu);
    while (!p->holding)
        if (pthread_cond_timedwait(&p->cond, &p->mu, &ts) == ETIMEDOUT) {
            rc = p->holding ? 0 : -1;
            break;
        }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int tu_proxy_wait_server_closed(tu_proxy *p, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&p->mu);
    while (p->holding && !p->srv_closed)
        if (pthread_cond_timedwait(&p->cond, &p->mu, &ts) == ETIMEDOUT)
            break;
    rc = p->holding && p->srv_closed ? 0 : -1;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int tu_proxy_release_held(tu_proxy *p, int err, int timeout_ms)
{
    struct timespec ts;
    int rc;

    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&p->mu);
    p->rel_err = err;
    p->rel_pending = 1;
    p->rel_rc = -1;
    pthread_mutex_unlock(&p->mu);
    poke(p);
    pthread_mutex_lock(&p->mu);
    while (p->rel_pending)
        if (pthread_cond_timedwait(&p->cond, &p->mu, &ts) == ETIMEDOUT)
            break;
    rc = p->rel_pending ? -1 : p->rel_rc;
    p->rel_pending = 0;
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void tu_proxy_block(tu_proxy *p, int blocked)
{
    pthread_mutex_lock(&p->mu);
    p->blocked = blocked;
    pthread_mutex_unlock(&p->mu);
    poke(p);
}

void tu_proxy_blackhole(tu_proxy *p, int on)
{
    pthread_mutex_lock(&p->mu);
    p->blackhole = on;
    pthread_mutex_unlock(&p->mu);
    poke(p);
}

int tu_proxy_accepted(tu_proxy *p)
{
    int n;

    pthread_mutex_lock(&p->mu);
    n = p->accepted;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void tu_proxy_stop(tu_proxy *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_mutex_unlock(&p->mu);
    poke(p);
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
