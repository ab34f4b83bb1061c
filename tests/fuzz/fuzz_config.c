/* libFuzzer target: the agent's configuration parser and validator
 * (src/agent/config.c, zka_config_load_string).
 *
 * Invariants checked besides "no crash":
 * - the result is 0 (and *out set) or ZKC_EINVAL (and *out untouched); a
 *   config names no credentials file that could exist (see NAME), so
 *   nothing else is possible;
 * - an error message is "NAME:LINE:COL: ..." with the position it reports,
 *   the position lies inside the text (a line that exists, a column within
 *   that line's length + 1) and the key path is a terminated string;
 * - an accepted config has the documented shape: servers, root, cluster
 *   set; a positive session timeout; every handler subscribed to at least
 *   one known event with either argv or a shell command and a positive
 *   timeout; a `while: lock` app names a declared, held lock;
 * - loading the same text twice gives configs that zka_config_diff finds
 *   equal, and every handler entry equals itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h"
#include "fuzz.h"

/* A directory that does not exist: a relative credentials_file cannot be
 * opened, so the outcome depends on the text alone. */
#define NAME "/nonexistent-zkcoord-fuzz/zkcoord.json"

static void check_error(const char *text, int rc, const zka_config_error *err)
{
    char prefix[64];
    int lines = 1, col = 1, maxcol = 1, l = 1;
    const char *p;

    FUZZ_CHECK(rc == ZKC_EINVAL || rc == ZKC_ESYS, "unexpected error %d", rc);
    FUZZ_CHECK(memchr(err->key, '\0', sizeof(err->key)) != NULL, "key path not terminated");
    FUZZ_CHECK(memchr(err->text, '\0', sizeof(err->text)) != NULL, "message not terminated");
    FUZZ_CHECK(strncmp(err->text, NAME ":", strlen(NAME ":")) == 0, "message without file: %s",
               err->text);
    if (err->line == 0)
        return;
    snprintf(prefix, sizeof(prefix), ":%d:%d: ", err->line, err->column);
    FUZZ_CHECK(strncmp(err->text + strlen(NAME), prefix, strlen(prefix)) == 0,
               "message does not carry its position %s: %s", prefix, err->text);
    for (p = text; *p; p++)
        if (*p == '\n')
            lines++;
    FUZZ_CHECK(err->line >= 1 && err->line <= lines, "line %d of %d", err->line, lines);
    /* The length of the error's line, in characters (UTF-8 lead bytes). */
    for (p = text; *p; p++) {
        if (*p == '\n') {
            l++;
            col = 1;
            continue;
        }
        if (l == err->line && ((unsigned char)*p & 0xC0) != 0x80)
            col++;
        if (l == err->line && col > maxcol)
            maxcol = col;
    }
    /* jansson may point one past the last character (end of input). */
    FUZZ_CHECK(err->column >= 0 && err->column <= maxcol + 1, "column %d on a line of %d",
               err->column, maxcol - 1);
}

static void check_config(const zka_config *c)
{
    size_t i;

    FUZZ_CHECK(c->zookeeper.servers && *c->zookeeper.servers, "no servers");
    FUZZ_CHECK(c->zookeeper.root && c->zookeeper.root[0] == '/', "root not absolute");
    FUZZ_CHECK(c->zookeeper.session_timeout_ms > 0, "session timeout %d",
               c->zookeeper.session_timeout_ms);
    FUZZ_CHECK(c->cluster && *c->cluster, "no cluster");
    FUZZ_CHECK(!c->member.registers || (c->member.id && *c->member.id), "member without id");
    FUZZ_CHECK(!c->member.registers || (c->member.port >= 0 && c->member.port <= 65535), "port %d",
               c->member.port);
    for (i = 0; i < c->n_handlers; i++) {
        const zka_handler_cfg *h = &c->handlers[i];
        FUZZ_CHECK(h->events != 0 && h->events < (1u << ZKA_EV_COUNT), "handler %zu events %#x", i,
                   h->events);
        FUZZ_CHECK((h->args != NULL) != (h->shell != NULL), "handler %zu: args xor shell", i);
        FUZZ_CHECK(!h->args || h->args[0], "handler %zu: empty argv", i);
        FUZZ_CHECK(h->timeout_ms > 0, "handler %zu timeout %d", i, h->timeout_ms);
        FUZZ_CHECK(zka_handler_cfg_equal(h, h), "handler %zu differs from itself", i);
    }
    for (i = 0; i < c->n_locks; i++)
        FUZZ_CHECK(c->locks[i].name && c->locks[i].path && c->locks[i].path[0] == '/',
                   "lock %zu without name or absolute path", i);
    if (c->supervise.enabled && c->supervise.when == ZKA_WHILE_LOCK) {
        int found = 0;
        for (i = 0; i < c->n_locks; i++)
            found |= strcmp(c->locks[i].name, c->supervise.lock) == 0 && c->locks[i].hold;
        FUZZ_CHECK(found, "supervised under lock %s, which is not a held lock", c->supervise.lock);
    }
    FUZZ_CHECK(zka_config_diff(c, c) == 0, "a config differs from itself");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    zka_config *c = NULL, *again = NULL;
    zka_config_error err;
    int rc, rc2;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    rc = zka_config_load_string(text, NAME, &c, &err);
    if (rc != 0) {
        FUZZ_CHECK(c == NULL, "*out set on error %d", rc);
        check_error(text, rc, &err);
    } else {
        FUZZ_CHECK(c != NULL, "*out not set on success");
        check_config(c);
        rc2 = zka_config_load_string(text, NAME, &again, NULL);
        FUZZ_CHECK(rc2 == 0 && again, "the same text failed the second time: %d", rc2);
        FUZZ_CHECK(zka_config_diff(c, again) == 0, "two loads of one text differ: %#x",
                   zka_config_diff(c, again));
        zka_config_free(again);
        zka_config_free(c);
    }
    free(text);
    return 0;
}
