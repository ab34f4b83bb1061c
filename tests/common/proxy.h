/* A loopback TCP proxy for fault injection in tests: it listens on
 * 127.0.0.1 (a free port), forwards every connection to one target, and on
 * demand cuts connections, drops a reply on the floor, delivers a reply out
 * of order, holds a reply back and delivers it with another error code, or
 * refuses service.
 * It runs in its own thread; every function may be called from any thread. */
#ifndef ZKC_TESTS_PROXY_H
#define ZKC_TESTS_PROXY_H

typedef struct tu_proxy tu_proxy;

/* Start a proxy to `target` ("host:port", IPv4 literal host). Returns 0 or
 * -1 (reason on stderr). */
int tu_proxy_start(tu_proxy **out, const char *target);

/* "127.0.0.1:port" to give to a client. Borrowed until tu_proxy_stop(). */
const char *tu_proxy_address(const tu_proxy *p);

/* Close every current connection (both sides) now. */
void tu_proxy_cut(tu_proxy *p);

/* Arm: right after the next client->server chunk of at least `min_bytes`
 * bytes has been forwarded in full, cut every connection, so the request
 * reaches the server but its reply is lost. (A ZooKeeper ping is 12 bytes;
 * any real request is larger.) */
void tu_proxy_cut_after_request(tu_proxy *p, int min_bytes);

/* Wait until an armed cut has happened, at most timeout_ms. 0 or -1. */
int tu_proxy_wait_cut(tu_proxy *p, int timeout_ms);

/* Arm: the reply to the next request of ZooKeeper opcode `op` (0: any
 * request but close; e.g. 15 create2, 12 getChildren2, 4 getData) reaches
 * its client out of order: swapped with the reply behind it when that one
 * has already arrived, else with its xid changed. The ZooKeeper C client
 * then meets "unexpected server response" (zookeeper.c zookeeper_process)
 * and drops the connection, ending that request and every other one still
 * pending on it with ZRUNTIMEINCONSISTENCY; the request itself was
 * applied. Pings (xid -2), watch events (xid -1) and the connect handshake
 * are never chosen. If the chosen request's connection closes first, the
 * next matching request is chosen. One reorder per arming; a negative `op`
 * disarms. */
void tu_proxy_reorder_reply(tu_proxy *p, int op);

/* Wait until an armed reorder has happened (or was disarmed), at most
 * timeout_ms. 0 or -1. */
int tu_proxy_wait_reorder(tu_proxy *p, int timeout_ms);

/* Reorders done so far; *swaps (if not NULL) how many of them were swaps
 * of two replies (the others changed an xid); *behind (if not NULL) how
 * many requests the client had sent after the chosen one when the last
 * reorder hit (pending too, so ended by the same drop). */
int tu_proxy_reorders(tu_proxy *p, int *swaps, int *behind);

/* Arm: the reply to the next request of opcode `op` (chosen as by
 * tu_proxy_reorder_reply) is held back, with everything the server sends
 * behind it on that connection, the client's side left open, until
 * tu_proxy_release_held(). If the server closes that connection meanwhile
 * (a session closed from elsewhere), the client is not told until the
 * release, and what it sends is dropped. Keep the hold shorter than the
 * client's receive timeout (2/3 of its session timeout) or the client drops
 * the connection itself, and the held replies with it. One hold per
 * arming; a negative `op` disarms. */
void tu_proxy_hold_reply(tu_proxy *p, int op);

/* Wait until an armed hold holds its reply, at most timeout_ms. 0 or -1. */
int tu_proxy_wait_held(tu_proxy *p, int timeout_ms);

/* Wait until the server has closed the held connection, at most
 * timeout_ms. 0, or -1 (still open, or nothing held). */
int tu_proxy_wait_server_closed(tu_proxy *p, int timeout_ms);

/* Deliver what a hold kept back: the held reply first, its ReplyHeader's
 * err set to `err` (e.g. -12, the server's UNKNOWNSESSION), then the rest;
 * then, if the server closed the connection meanwhile, close the client's
 * side too. Waits at most timeout_ms for the proxy thread. 0, or -1 when
 * nothing was held (the connection was gone) or the wait ran out. */
int tu_proxy_release_held(tu_proxy *p, int err, int timeout_ms);

/* While blocked, new connections are accepted and closed at once, and
 * current ones are cut: the server looks unreachable. */
void tu_proxy_block(tu_proxy *p, int blocked);

/* While on, connections stay open (new ones are accepted and connected)
 * but nothing is forwarded in either direction: a blackhole, which only
 * timeouts can detect, unlike a cut. Bytes wait in the kernel's buffers, so
 * a stream still open when it ends resumes intact, as TCP would. */
void tu_proxy_blackhole(tu_proxy *p, int on);

/* Connections accepted so far. */
int tu_proxy_accepted(tu_proxy *p);

/* Stop the thread, close everything, free. NULL is a no-op. */
void tu_proxy_stop(tu_proxy *p);

#endif
