/* The agent's configuration loader: a table of bad files, each with the exact
 * message it must produce (file:line:column: key: what was expected), and a
 * good file whose every field is checked. Runs in a temporary directory and
 * loads "zkcoord.json" by a relative name, so messages are stable. */
#include <CUnit/Basic.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/config.h"
#include "agent/drain.h"
#include "payload.h" /* the runtime encoder --check must agree with */

static char tmpdir[PATH_MAX];
static char oldcwd[PATH_MAX];

static int write_file(const char *name, const char *text, mode_t mode)
{
    FILE *f = fopen(name, "w");

    if (!f)
        return -1;
    fputs(text, f);
    if (fclose(f) != 0)
        return -1;
    return chmod(name, mode);
}

static int suite_init(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "%s/zka_cfg_XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!getcwd(oldcwd, sizeof(oldcwd)) || !mkdtemp(tmpdir) || chdir(tmpdir) != 0)
        return -1;
    /* Credentials files the table refers to. */
    if (write_file("zk.secret", "app:s3cret\n", 0600) ||
        write_file("world.secret", "a:b\n", 0644) || write_file("gw.secret", "a:b\n", 0620) ||
        write_file("nocolon.secret", "justuser\n", 0600) || mkdir("secret.d", 0700) != 0)
        return -1;
    return 0;
}

static int suite_clean(void)
{
    const char *files[] = {"zkcoord.json", "zk.secret",      "world.secret",
                           "gw.secret",    "nocolon.secret", NULL};
    int i;

    for (i = 0; files[i]; i++)
        unlink(files[i]);
    rmdir("secret.d");
    if (chdir(oldcwd) != 0)
        return -1;
    return rmdir(tmpdir);
}

struct bad_case {
    const char *what;
    const char *json;
    int rc;
    const char *msg;
};

static const struct bad_case bad_cases[] = {
    {"syntax error", "{\"cluster\": \"a\",\n \"member\": {\"port\": 80,}}\n", ZKC_EINVAL,
     "zkcoord.json:2:24: string or '}' expected near '}'"},
    {"duplicate key", "{\"cluster\": \"a\",\n \"cluster\": \"b\"}\n", ZKC_EINVAL,
     "zkcoord.json:2:10: duplicate object key near '\"cluster\"'"},
    {"not an object", "[1]\n", ZKC_EINVAL,
     "zkcoord.json:1:1: expected a JSON object at the top level"},
    {"wrong type", "{\n  \"cluster\": \"orders\",\n  \"member\": {\"port\": \"80a\"}\n}\n",
     ZKC_EINVAL, "zkcoord.json:3:22: member.port: expected an integer 1-65535, got \"80a\""},
    {"wrong type bool", "{\"cluster\": \"a\", \"election\": {\"enabled\": \"yes\"}}", ZKC_EINVAL,
     "zkcoord.json:1:42: election.enabled: expected true or false, got \"yes\""},
    {"unknown key with suggestion",
     "{\"cluster\": \"a\",\n \"handlers\": [{\"on\": [\"elected\"], \"args\": [\"/bin/true\"], "
     "\"timout_ms\": 5}]}",
     ZKC_EINVAL,
     "zkcoord.json:2:58: handlers[0].timout_ms: unknown key, did you mean 'timeout_ms'?"},
    {"unknown key without suggestion", "{\"cluster\": \"a\", \"bogus\": 1}", ZKC_EINVAL,
     "zkcoord.json:1:18: bogus: unknown key (expected one of: zookeeper, cluster, member, health, "
     "election, locks, handlers, supervise, log, metrics, work)"},
    {"missing required", "{\"member\": {\"port\": 80}}", ZKC_EINVAL,
     "zkcoord.json:1:1: cluster: required key missing (expected a name of letters, digits, '.', "
     "'_' or '-')"},
    {"missing nested required", "{\"cluster\": \"a\", \"member\": {\"id\": \"x\"}}", ZKC_EINVAL,
     "zkcoord.json:1:28: member.port: required key missing (expected the port the app serves on, "
     "1-65535)"},
    {"bad cluster name", "{\"cluster\": \"a b\"}", ZKC_EINVAL,
     "zkcoord.json:1:13: cluster: expected a name of letters, digits, '.', '_' or '-', got \"a "
     "b\""},
    {"out of range", "{\"cluster\": \"a\", \"health\": {\"args\": [\"/bin/true\"], \"rise\": 0}}",
     ZKC_EINVAL, "zkcoord.json:1:60: health.rise: expected an integer 1-100, got 0"},
    {"out of range after UTF-8",
     "{\"cluster\": \"a\", \"member\": {\"metadata\": {\"z\": \"\xc3\xa4\xc3\xb6\"}, \"port\": 0}}",
     ZKC_EINVAL, "zkcoord.json:1:62: member.port: expected an integer 1-65535, got 0"},
    {"bad enum", "{\"cluster\": \"a\", \"election\": {\"on_suspend\": \"pause\"}}", ZKC_EINVAL,
     "zkcoord.json:1:45: election.on_suspend: expected \"step_down\" or \"wait\", got \"pause\""},
    {"bad servers", "{\"cluster\": \"a\", \"zookeeper\": {\"servers\": \"localhost\"}}", ZKC_EINVAL,
     "zkcoord.json:1:43: zookeeper.servers: expected \"host:port[,host:port...]\", got "
     "\"localhost\""},
    {"bad event name",
     "{\"cluster\": \"a\", \"handlers\": [{\"on\": [\"leader_change\"], \"args\": [\"x\"]}]}",
     ZKC_EINVAL,
     "zkcoord.json:1:39: handlers[0].on[0]: unknown event \"leader_change\", did you mean "
     "'leader_changed'?"},
    {"shell and args",
     "{\"cluster\": \"a\", \"handlers\": [{\"on\": [\"elected\"], \"args\": [\"x\"], \"shell\": "
     "\"y\"}]}",
     ZKC_EINVAL, "zkcoord.json:1:31: handlers[0]: give either \"args\" or \"shell\", not both"},
    {"health neither args nor tcp", "{\"cluster\": \"a\", \"health\": {\"rise\": 1}}", ZKC_EINVAL,
     "zkcoord.json:1:28: health: expected \"args\" (a command) or \"tcp\" ({\"host\", \"port\"}) "
     "to "
     "check"},
    {"world-readable credentials",
     "{\"cluster\": \"a\",\n \"zookeeper\": {\"auth\": {\"credentials_file\": \"world.secret\"}}}",
     ZKC_EINVAL,
     "zkcoord.json:2:45: zookeeper.auth.credentials_file: world.secret has mode 0644: it must not "
     "be world-readable or group-writable (chmod 600 it)"},
    {"group-writable credentials",
     "{\"cluster\": \"a\",\n \"zookeeper\": {\"auth\": {\"credentials_file\": \"gw.secret\"}}}",
     ZKC_EINVAL,
     "zkcoord.json:2:45: zookeeper.auth.credentials_file: gw.secret has mode 0620: it must not be "
     "world-readable or group-writable (chmod 600 it)"},
    {"unreadable credentials",
     "{\"cluster\": \"a\",\n \"zookeeper\": {\"auth\": {\"credentials_file\": \"secret.d\"}}}",
     ZKC_EINVAL,
     "zkcoord.json:2:45: zookeeper.auth.credentials_file: cannot read secret.d: Is a directory"},
    {"missing credentials",
     "{\"cluster\": \"a\",\n \"zookeeper\": {\"auth\": {\"credentials_file\": \"none.secret\"}}}",
     ZKC_EINVAL,
     "zkcoord.json:2:45: zookeeper.auth.credentials_file: cannot open none.secret: No such file or "
     "directory"},
    {"malformed credentials",
     "{\"cluster\": \"a\",\n \"zookeeper\": {\"auth\": {\"credentials_file\": "
     "\"nocolon.secret\"}}}",
     ZKC_EINVAL,
     "zkcoord.json:2:45: zookeeper.auth.credentials_file: nocolon.secret: expected one line "
     "\"user:password\""},
    {"supervise lock not declared",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"supervise\": {\"args\": [\"x\"], "
     "\"while\": "
     "\"lock:db\"}}",
     ZKC_EINVAL, "zkcoord.json:1:79: supervise.while: lock \"db\" is not declared in \"locks\""},
    {"supervise leader without election",
     "{\"cluster\": \"a\", \"supervise\": {\"args\": [\"x\"], \"while\": \"leader\"}}", ZKC_EINVAL,
     "zkcoord.json:1:56: supervise.while: \"leader\" needs election.enabled true"},
    {"float for an integer",
     "{\"cluster\": \"a\", \"handlers\": [{\"on\": [\"elected\"], \"args\": [\"x\"], "
     "\"timeout_ms\": 1.5}]}",
     ZKC_EINVAL,
     "zkcoord.json:1:80: handlers[0].timeout_ms: expected an integer 1-86400000, got 1.5"},
    {"empty argv", "{\"cluster\": \"a\", \"supervise\": {\"args\": [], \"while\": \"member\"}}",
     ZKC_EINVAL,
     "zkcoord.json:1:40: supervise.args: expected a non-empty array of strings (argv), got []"},
    {"duplicate lock name",
     "{\"cluster\": \"a\", \"locks\": [{\"name\": \"db\"}, {\"name\": \"db\"}]}", ZKC_EINVAL,
     "zkcoord.json:1:53: locks[1].name: lock \"db\" is already declared as locks[0]"},
    {"bad env name",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"supervise\": {\"args\": [\"x\"], "
     "\"while\": "
     "\"member\", \"env\": {\"1X\": \"v\"}}}",
     ZKC_EINVAL,
     "zkcoord.json:1:97: supervise.env.1X: expected an environment variable name "
     "[A-Za-z_][A-Za-z0-9_]*"},
    {"election without member", "{\"cluster\": \"a\", \"election\": {\"enabled\": true}}",
     ZKC_EINVAL,
     "zkcoord.json:1:42: election.enabled: needs a \"member\" section (only members campaign)"},
    /* metrics (issue 13 item 1) */
    {"metrics: a host name",
     "{\"cluster\": \"a\",\n \"metrics\": {\"listen\": \"localhost:9431\"}}", ZKC_EINVAL,
     "zkcoord.json:2:24: metrics.listen: expected \"IP:PORT\" with an IPv4 literal or [IPv6] "
     "literal and a port 1-65535 (e.g. \"127.0.0.1:9431\"), got \"localhost:9431\""},
    {"metrics: port out of range",
     "{\"cluster\": \"a\", \"metrics\": {\"listen\": \"127.0.0.1:65536\"}}", ZKC_EINVAL,
     "zkcoord.json:1:40: metrics.listen: expected \"IP:PORT\" with an IPv4 literal or [IPv6] "
     "literal and a port 1-65535 (e.g. \"127.0.0.1:9431\"), got \"127.0.0.1:65536\""},
    {"metrics: IPv6 without brackets",
     "{\"cluster\": \"a\", \"metrics\": {\"listen\": \"::1:9431\"}}", ZKC_EINVAL,
     "zkcoord.json:1:40: metrics.listen: expected \"IP:PORT\" with an IPv4 literal or [IPv6] "
     "literal and a port 1-65535 (e.g. \"127.0.0.1:9431\"), got \"::1:9431\""},
    {"metrics: not a string", "{\"cluster\": \"a\", \"metrics\": {\"listen\": 9431}}", ZKC_EINVAL,
     "zkcoord.json:1:40: metrics.listen: expected a non-empty string, got 9431"},
    {"metrics: unknown key", "{\"cluster\": \"a\", \"metrics\": {\"port\": 9431}}", ZKC_EINVAL,
     "zkcoord.json:1:30: metrics.port: unknown key (expected one of: listen)"},
    {"metrics: not an object", "{\"cluster\": \"a\", \"metrics\": true}", ZKC_EINVAL,
     "zkcoord.json:1:29: metrics: expected an object, got true"},
    /* work (issue 12 item 4) */
    {"work without member", "{\"cluster\": \"a\", \"work\": {\"capacity\": 2}}", ZKC_EINVAL,
     "zkcoord.json:1:26: work: needs a \"member\" section (work goes to registered members)"},
    {"work: capacity 0",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1},\n \"work\": {\"capacity\": 0}}", ZKC_EINVAL,
     "zkcoord.json:2:23: work.capacity: expected an integer 1-1000000, got 0"},
    {"work: tasks without args",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"work\": {\"tasks\": {\"timeout_ms\": 5}}}",
     ZKC_EINVAL,
     "zkcoord.json:1:59: work.tasks.args: required key missing (expected the argv array of the "
     "task handler)"},
    {"work: tasks key misspelt",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"work\": {\"tasks\": {\"args\": [\"x\"], "
     "\"timeout\": 5}}}",
     ZKC_EINVAL, "zkcoord.json:1:75: work.tasks.timeout: unknown key, did you mean 'timeout_ms'?"},
    {"work: capacity also in the metadata",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1, \"metadata\": {\"capacity\": 3}}, "
     "\"work\": {}}",
     ZKC_EINVAL,
     "zkcoord.json:1:65: member.metadata.capacity: set by work.capacity when a work section is "
     "present: remove it here"},
    {"work: bad env value",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"work\": {\"tasks\": {\"args\": [\"x\"], "
     "\"env\": {\"A\": 1}}}}",
     ZKC_EINVAL, "zkcoord.json:1:88: work.tasks.env.A: expected a string, got 1"},
    /* work items (issue 12 item 4, the item part) */
    {"work: items and partitions",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"work\": {\"items\": [\"x\"], "
     "\"partitions\": 2}}",
     ZKC_EINVAL,
     "zkcoord.json:1:66: work.partitions: give either \"items\" or \"partitions\", not both"},
    {"work: partitions 0",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"work\": {\"partitions\": 0}}", ZKC_EINVAL,
     "zkcoord.json:1:64: work.partitions: expected an integer 1-100000, got 0"},
    {"work: empty items",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"work\": {\"items\": []}}", ZKC_EINVAL,
     "zkcoord.json:1:59: work.items: expected a non-empty array of item names or {\"name\", "
     "\"spec\"} objects, got []"},
    {"work: item name with a slash",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"work\": {\"items\": [\"p0\", \"a/b\"]}}",
     ZKC_EINVAL,
     "zkcoord.json:1:66: work.items[1]: expected an item name (1-200 bytes of printable ASCII "
     "without '/', not \".\" or \"..\") or an object {\"name\", \"spec\"}, got \"a/b\""},
    {"work: item listed twice",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1},\n \"work\": {\"items\": [\"p0\", {\"name\": "
     "\"p0\"}]}}",
     ZKC_EINVAL,
     "zkcoord.json:2:36: work.items[1].name: item \"p0\" is listed twice (also work.items[0])"},
    {"work: item object without a name",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"work\": {\"items\": [{\"spec\": \"s\"}]}}",
     ZKC_EINVAL,
     "zkcoord.json:1:60: work.items[0].name: required key missing (expected the item's name)"},
    {"work: item spec not a string",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"work\": {\"items\": [{\"name\": \"p\", "
     "\"spec\": 5}]}}",
     ZKC_EINVAL, "zkcoord.json:1:82: work.items[0].spec: expected a string, got 5"},
    {"work: item key misspelt",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"work\": {\"items\": [{\"name\": \"p\", "
     "\"spce\": \"s\"}]}}",
     ZKC_EINVAL, "zkcoord.json:1:74: work.items[0].spce: unknown key, did you mean 'spec'?"},
    {"supervise while item without items",
     "{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"supervise\": {\"args\": [\"/bin/app\"], "
     "\"while\": \"item\"},\n \"work\": {\"capacity\": 1}}",
     ZKC_EINVAL,
     "zkcoord.json:1:86: supervise.while: \"item\" needs work items (work.items or "
     "work.partitions)"},
};

static void test_bad_table(void)
{
    size_t i;

    for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *bc = &bad_cases[i];
        zka_config *c = NULL;
        zka_config_error err;
        int rc;

        CU_ASSERT_EQUAL_FATAL(write_file("zkcoord.json", bc->json, 0644), 0);
        rc = zka_config_load("zkcoord.json", &c, &err);
        CU_ASSERT_EQUAL(rc, bc->rc);
        CU_ASSERT_PTR_NULL(c);
        CU_ASSERT_STRING_EQUAL(err.text, bc->msg);
        if (rc != bc->rc || strcmp(err.text, bc->msg) != 0)
            fprintf(stderr, "\n  case \"%s\":\n    got:      %s\n    expected: %s\n", bc->what,
                    err.text, bc->msg);
        zka_config_free(c);
    }
}

static void test_missing_file(void)
{
    zka_config *c = NULL;
    zka_config_error err;

    CU_ASSERT_EQUAL(zka_config_load("nonexistent.json", &c, &err), ZKC_ESYS);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_STRING_EQUAL(err.text, "nonexistent.json: cannot open: No such file or directory");
}

static const char good_json[] =
    "{\n"
    "  \"zookeeper\": {\"servers\": \"10.0.0.1:2181,10.0.0.2:2181\", \"session_timeout_ms\": "
    "6000,\n"
    "                \"root\": \"/prod\", \"auth\": {\"scheme\": \"digest\", \"credentials_file\": "
    "\"zk.secret\"}},\n"
    "  \"cluster\": \"orders\",\n"
    "  \"member\": {\"id\": \"orders-1\", \"host\": \"10.0.0.5\", \"port\": 8080, \"shard\": 3,\n"
    "             \"endpoints\": {\"admin\": {\"host\": \"10.0.0.6\", \"port\": 9090}, \"http\": "
    "{\"port\": 80}},\n"
    "             \"metadata\": {\"zone\": \"a\", \"weight\": 5}},\n"
    "  \"health\": {\"args\": [\"/usr/bin/curl\", \"-fsS\", \"http://127.0.0.1:8080/\"], "
    "\"interval_ms\": 500,\n"
    "             \"timeout_ms\": 250, \"rise\": 4, \"fall\": 5},\n"
    "  \"election\": {\"enabled\": true, \"on_suspend\": \"wait\"},\n"
    "  \"locks\": [{\"name\": \"db\"}, {\"name\": \"cron\", \"path\": \"/locks/cron\", \"hold\": "
    "false}],\n"
    "  \"handlers\": [\n"
    "    {\"on\": [\"member_joined\", \"member_left\"], \"args\": [\"reload-lb\", \"--all\"], "
    "\"timeout_ms\": 5000},\n"
    "    {\"on\": [\"elected\"], \"shell\": \"echo elected >> /tmp/log\", \"max_output_bytes\": "
    "100}\n"
    "  ],\n"
    "  \"supervise\": {\"args\": [\"/usr/bin/app\", \"--serve\"], \"while\": \"lock:db\", "
    "\"restart\": \"always\",\n"
    "                \"restart_delay_ms\": 250, \"stop_grace_ms\": 3000, \"env\": {\"MODE\": "
    "\"primary\"}},\n"
    "  \"log\": {\"level\": \"debug\", \"syslog\": true}\n"
    "}\n";

static void test_good_roundtrip(void)
{
    zka_config *c = NULL;
    zka_config_error err;
    json_t *md;

    CU_ASSERT_EQUAL_FATAL(write_file("zkcoord.json", good_json, 0644), 0);
    CU_ASSERT_EQUAL_FATAL(zka_config_load("zkcoord.json", &c, &err), 0);
    CU_ASSERT_STRING_EQUAL(c->file, "zkcoord.json");
    CU_ASSERT_STRING_EQUAL(c->zookeeper.servers, "10.0.0.1:2181,10.0.0.2:2181");
    CU_ASSERT_EQUAL(c->zookeeper.session_timeout_ms, 6000);
    CU_ASSERT_STRING_EQUAL(c->zookeeper.root, "/prod");
    CU_ASSERT_STRING_EQUAL(c->zookeeper.auth_scheme, "digest");
    CU_ASSERT_STRING_EQUAL(c->zookeeper.credentials_file, "zk.secret");
    CU_ASSERT_STRING_EQUAL(c->zookeeper.digest_user, "app");
    CU_ASSERT_STRING_EQUAL(c->zookeeper.digest_password, "s3cret");
    CU_ASSERT_STRING_EQUAL(c->cluster, "orders");
    CU_ASSERT_TRUE(c->member.registers);
    CU_ASSERT_STRING_EQUAL(c->member.id, "orders-1");
    CU_ASSERT_STRING_EQUAL(c->member.host, "10.0.0.5");
    CU_ASSERT_EQUAL(c->member.port, 8080);
    CU_ASSERT_EQUAL(c->member.shard, 3);
    CU_ASSERT_EQUAL_FATAL(c->member.n_endpoints, 2);
    CU_ASSERT_STRING_EQUAL(c->member.endpoints[0].name, "admin");
    CU_ASSERT_STRING_EQUAL(c->member.endpoints[0].host, "10.0.0.6");
    CU_ASSERT_EQUAL(c->member.endpoints[0].port, 9090);
    CU_ASSERT_STRING_EQUAL(c->member.endpoints[1].name, "http");
    CU_ASSERT_STRING_EQUAL(c->member.endpoints[1].host, "10.0.0.5"); /* member.host */
    CU_ASSERT_EQUAL(c->member.endpoints[1].port, 80);
    md = json_pack("{s:s, s:i}", "zone", "a", "weight", 5);
    CU_ASSERT_TRUE(json_equal(c->member.metadata, md));
    json_decref(md);
    CU_ASSERT_EQUAL(c->health.kind, ZKA_HEALTH_ARGS);
    CU_ASSERT_STRING_EQUAL(c->health.args[0], "/usr/bin/curl");
    CU_ASSERT_STRING_EQUAL(c->health.args[2], "http://127.0.0.1:8080/");
    CU_ASSERT_PTR_NULL(c->health.args[3]);
    CU_ASSERT_EQUAL(c->health.interval_ms, 500);
    CU_ASSERT_EQUAL(c->health.timeout_ms, 250);
    CU_ASSERT_EQUAL(c->health.rise, 4);
    CU_ASSERT_EQUAL(c->health.fall, 5);
    CU_ASSERT_TRUE(c->election.enabled);
    CU_ASSERT_EQUAL(c->election.on_suspend, ZKA_SUSPEND_WAIT);
    CU_ASSERT_EQUAL_FATAL(c->n_locks, 2);
    CU_ASSERT_STRING_EQUAL(c->locks[0].name, "db");
    CU_ASSERT_STRING_EQUAL(c->locks[0].path, "/prod/orders/locks/db");
    CU_ASSERT_TRUE(c->locks[0].hold);
    CU_ASSERT_STRING_EQUAL(c->locks[1].name, "cron");
    CU_ASSERT_STRING_EQUAL(c->locks[1].path, "/locks/cron");
    CU_ASSERT_FALSE(c->locks[1].hold);
    CU_ASSERT_EQUAL_FATAL(c->n_handlers, 2);
    CU_ASSERT_EQUAL(c->handlers[0].events,
                    (1u << ZKA_EV_MEMBER_JOINED) | (1u << ZKA_EV_MEMBER_LEFT));
    CU_ASSERT_STRING_EQUAL(c->handlers[0].args[0], "reload-lb");
    CU_ASSERT_STRING_EQUAL(c->handlers[0].args[1], "--all");
    CU_ASSERT_PTR_NULL(c->handlers[0].args[2]);
    CU_ASSERT_PTR_NULL(c->handlers[0].shell);
    CU_ASSERT_EQUAL(c->handlers[0].timeout_ms, 5000);
    CU_ASSERT_EQUAL(c->handlers[0].max_output_bytes, 65536);
    CU_ASSERT_EQUAL(c->handlers[1].events, 1u << ZKA_EV_ELECTED);
    CU_ASSERT_PTR_NULL(c->handlers[1].args);
    CU_ASSERT_STRING_EQUAL(c->handlers[1].shell, "echo elected >> /tmp/log");
    CU_ASSERT_EQUAL(c->handlers[1].timeout_ms, 10000);
    CU_ASSERT_EQUAL(c->handlers[1].max_output_bytes, 100);
    CU_ASSERT_TRUE(c->supervise.enabled);
    CU_ASSERT_STRING_EQUAL(c->supervise.args[0], "/usr/bin/app");
    CU_ASSERT_STRING_EQUAL(c->supervise.args[1], "--serve");
    CU_ASSERT_PTR_NULL(c->supervise.args[2]);
    CU_ASSERT_EQUAL(c->supervise.when, ZKA_WHILE_LOCK);
    CU_ASSERT_STRING_EQUAL(c->supervise.lock, "db");
    CU_ASSERT_EQUAL(c->supervise.restart, ZKA_RESTART_ALWAYS);
    CU_ASSERT_EQUAL(c->supervise.restart_delay_ms, 250);
    CU_ASSERT_EQUAL(c->supervise.stop_grace_ms, 3000);
    CU_ASSERT_EQUAL_FATAL(c->supervise.n_env, 1);
    CU_ASSERT_STRING_EQUAL(c->supervise.env[0], "MODE=primary");
    CU_ASSERT_EQUAL(c->log.level, ZKC_LOG_DEBUG);
    CU_ASSERT_TRUE(c->log.syslog);
    zka_config_free(c);
}

static void test_defaults(void)
{
    zka_config *c = NULL;
    zka_config_error err;
    char host[256];

    CU_ASSERT_EQUAL_FATAL(gethostname(host, sizeof(host)), 0);
    CU_ASSERT_EQUAL_FATAL(write_file("zkcoord.json", "{\"cluster\": \"c1\"}\n", 0644), 0);
    CU_ASSERT_EQUAL_FATAL(zka_config_load("zkcoord.json", &c, &err), 0);
    CU_ASSERT_STRING_EQUAL(c->zookeeper.servers, "127.0.0.1:2181");
    CU_ASSERT_EQUAL(c->zookeeper.session_timeout_ms, 10000);
    CU_ASSERT_STRING_EQUAL(c->zookeeper.root, "/zkcoord");
    CU_ASSERT_PTR_NULL(c->zookeeper.auth_scheme);
    CU_ASSERT_PTR_NULL(c->zookeeper.digest_user);
    CU_ASSERT_FALSE(c->member.registers);
    CU_ASSERT_STRING_EQUAL(c->member.id, host);
    CU_ASSERT_STRING_EQUAL(c->member.host, host);
    CU_ASSERT_EQUAL(c->member.shard, 0);
    CU_ASSERT_TRUE(json_is_object(c->member.metadata) && json_object_size(c->member.metadata) == 0);
    CU_ASSERT_EQUAL(c->health.kind, ZKA_HEALTH_NONE);
    CU_ASSERT_EQUAL(c->health.interval_ms, 2000);
    CU_ASSERT_EQUAL(c->health.timeout_ms, 1000);
    CU_ASSERT_EQUAL(c->health.rise, 2);
    CU_ASSERT_EQUAL(c->health.fall, 3);
    CU_ASSERT_FALSE(c->election.enabled);
    CU_ASSERT_EQUAL(c->election.on_suspend, ZKA_SUSPEND_STEP_DOWN);
    CU_ASSERT_EQUAL(c->n_locks, 0);
    CU_ASSERT_EQUAL(c->n_handlers, 0);
    CU_ASSERT_FALSE(c->supervise.enabled);
    CU_ASSERT_EQUAL(c->supervise.restart, ZKA_RESTART_ON_FAILURE);
    CU_ASSERT_EQUAL(c->supervise.restart_delay_ms, 1000);
    CU_ASSERT_EQUAL(c->supervise.stop_grace_ms, 5000);
    CU_ASSERT_EQUAL(c->log.level, ZKC_LOG_INFO);
    CU_ASSERT_FALSE(c->log.syslog);
    zka_config_free(c);
}

/* Load `json` as zkcoord.json; NULL on error (reported). */
static zka_config *load_text(const char *json)
{
    zka_config *c = NULL;
    zka_config_error err;

    if (write_file("zkcoord.json", json, 0644) != 0)
        return NULL;
    if (zka_config_load("zkcoord.json", &c, &err) != 0)
        fprintf(stderr, "\n  load failed: %s\n", err.text);
    return c;
}

static void test_diff(void)
{
    static const char base[] =
        "{\"cluster\": \"a\", \"member\": {\"id\": \"m1\", \"port\": 1}, \"election\": "
        "{\"enabled\": true}, \"handlers\": [{\"on\": [\"elected\"], \"args\": [\"x\"]}]}";
    static const struct {
        const char *json;
        unsigned diff;
    } cases[] = {
        {"{\"cluster\": \"a\", \"member\": {\"id\": \"m1\", \"port\": 1}, \"election\": "
         "{\"enabled\": true}, \"handlers\": [{\"on\": [\"elected\"], \"args\": [\"x\"]}]}",
         0},
        {"{\"cluster\": \"a\", \"member\": {\"id\": \"m2\", \"port\": 1}, \"election\": "
         "{\"enabled\": true}, \"handlers\": [{\"on\": [\"elected\"], \"args\": [\"x\"]}]}",
         ZKA_DIFF_IDENTITY},
        {"{\"cluster\": \"a\", \"member\": {\"id\": \"m1\", \"port\": 2, \"metadata\": {\"k\": "
         "1}}, "
         "\"election\": {\"enabled\": true}, \"handlers\": [{\"on\": [\"elected\"], \"args\": "
         "[\"x\"]}]}",
         ZKA_DIFF_PAYLOAD},
        {"{\"cluster\": \"a\", \"member\": {\"id\": \"m1\", \"port\": 1}, \"election\": "
         "{\"enabled\": true}, \"handlers\": [{\"on\": [\"elected\"], \"args\": [\"y\"]}]}",
         ZKA_DIFF_HANDLERS},
        {"{\"cluster\": \"a\", \"member\": {\"id\": \"m1\", \"port\": 1}, \"election\": "
         "{\"enabled\": false}, \"handlers\": [{\"on\": [\"elected\"], \"args\": [\"x\"]}], "
         "\"zookeeper\": {\"servers\": \"h:1\"}, \"log\": {\"level\": \"warn\"}}",
         ZKA_DIFF_ELECTION | ZKA_DIFF_ZOOKEEPER | ZKA_DIFF_LOG},
        {"{\"cluster\": \"a\", \"member\": {\"id\": \"m1\", \"port\": 1}, \"election\": "
         "{\"enabled\": true}, \"handlers\": [{\"on\": [\"elected\"], \"args\": [\"x\"]}], "
         "\"supervise\": {\"args\": [\"app\"], \"while\": \"leader\"}, \"health\": {\"tcp\": "
         "{\"port\": 80}}}",
         ZKA_DIFF_SUPERVISE | ZKA_DIFF_HEALTH},
    };
    zka_config *a = load_text(base), *b;
    size_t i;

    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        b = load_text(cases[i].json);
        CU_ASSERT_PTR_NOT_NULL(b);
        if (!b)
            continue;
        CU_ASSERT_EQUAL(zka_config_diff(a, b), cases[i].diff);
        CU_ASSERT_EQUAL(zka_config_diff(b, a), cases[i].diff);
        zka_config_free(b);
    }
    zka_config_free(a);
}

static void test_metrics_section(void)
{
    zka_config *c = load_text("{\"cluster\": \"a\"}");

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FALSE(c->metrics.enabled); /* absent: off */
    zka_config_free(c);
    c = load_text("{\"cluster\": \"a\", \"metrics\": {}}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_TRUE(c->metrics.enabled); /* loopback by default */
    CU_ASSERT_STRING_EQUAL(c->metrics.listen, "127.0.0.1:9431");
    CU_ASSERT_STRING_EQUAL(c->metrics.host, "127.0.0.1");
    CU_ASSERT_EQUAL(c->metrics.port, 9431);
    CU_ASSERT_FALSE(c->metrics.ipv6);
    zka_config_free(c);
    c = load_text("{\"cluster\": \"a\", \"metrics\": {\"listen\": \"[::1]:19000\"}}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->metrics.host, "::1");
    CU_ASSERT_EQUAL(c->metrics.port, 19000);
    CU_ASSERT_TRUE(c->metrics.ipv6);
    {
        zka_config *d =
            load_text("{\"cluster\": \"a\", \"metrics\": {\"listen\": \"0.0.0.0:19000\"}}");
        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        CU_ASSERT_EQUAL(zka_config_diff(c, d), ZKA_DIFF_METRICS);
        zka_config_free(d);
    }
    zka_config_free(c);
}

/* The work section: defaults, capacity in the metadata, diff. */
static void test_work_section(void)
{
    zka_config *c = load_text("{\"cluster\": \"a\", \"member\": {\"port\": 1}}"), *d;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FALSE(c->work.enabled);
    CU_ASSERT_PTR_NULL(json_object_get(c->member.metadata, "capacity"));
    zka_config_free(c);
    c = load_text(
        "{\"cluster\": \"a\", \"member\": {\"port\": 1, \"metadata\": {\"k\": 1}}, "
        "\"work\": {\"tasks\": {\"args\": [\"/bin/t\", \"-v\"], \"env\": {\"A\": \"b\"}}}}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_TRUE(c->work.enabled);
    CU_ASSERT_TRUE(c->work.tasks);
    CU_ASSERT_EQUAL(c->work.capacity, 1);
    CU_ASSERT_EQUAL(c->work.task_timeout_ms, 60000);
    CU_ASSERT_STRING_EQUAL(c->work.task_args[1], "-v");
    CU_ASSERT_EQUAL(c->work.n_task_env, 1);
    CU_ASSERT_STRING_EQUAL(c->work.task_env[0], "A=b");
    /* published for the planner, next to the operator's own metadata */
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(c->member.metadata, "capacity")), 1);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(c->member.metadata, "k")), 1);
    d = load_text("{\"cluster\": \"a\", \"member\": {\"port\": 1, \"metadata\": {\"k\": 1}}, "
                  "\"work\": {\"capacity\": 4, \"tasks\": {\"args\": [\"/bin/t\", \"-v\"], "
                  "\"env\": {\"A\": \"b\"}}}}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(d->work.capacity, 4);
    CU_ASSERT_EQUAL(zka_config_diff(c, d), ZKA_DIFF_PAYLOAD); /* capacity: metadata only */
    zka_config_free(d);
    d = load_text("{\"cluster\": \"a\", \"member\": {\"port\": 1, \"metadata\": {\"k\": 1}}, "
                  "\"work\": {\"tasks\": {\"args\": [\"/bin/t\"], \"timeout_ms\": 5, "
                  "\"env\": {\"A\": \"b\"}}}}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(zka_config_diff(c, d), ZKA_DIFF_WORK);
    zka_config_free(d);
    zka_config_free(c);
}

/* Work items: partitions, items with specs, supervise while item, diff. */
static void test_work_items(void)
{
    zka_config *c = load_text("{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"election\": "
                              "{\"enabled\": true}, \"work\": {\"partitions\": 12},"
                              " \"supervise\": {\"args\": [\"/bin/app\"], \"while\": \"item\"},"
                              " \"handlers\": [{\"on\": [\"item_assigned\", \"item_revoked\"],"
                              " \"args\": [\"/bin/h\"]}]}"),
               *d;

    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_TRUE(c->work.items_enabled);
    CU_ASSERT_FALSE(c->work.tasks);
    CU_ASSERT_EQUAL(c->work.n_items, 12);
    CU_ASSERT_STRING_EQUAL(c->work.items[0], "p0");
    CU_ASSERT_STRING_EQUAL(c->work.items[11], "p11");
    CU_ASSERT_PTR_NULL(c->work.item_specs[3]);
    CU_ASSERT_EQUAL(c->supervise.when, ZKA_WHILE_ITEM);
    CU_ASSERT_EQUAL(c->handlers[0].events,
                    (1u << ZKA_EV_ITEM_ASSIGNED) | (1u << ZKA_EV_ITEM_REVOKED));
    d = load_text("{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"work\": {\"items\": "
                  "[\"x\", {\"name\": \"y.1\", \"spec\": \"{\\\"topic\\\": 3}\"}]}}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(d->work.n_items, 2);
    CU_ASSERT_STRING_EQUAL(d->work.items[1], "y.1");
    CU_ASSERT_PTR_NULL(d->work.item_specs[0]);
    CU_ASSERT_STRING_EQUAL(d->work.item_specs[1], "{\"topic\": 3}");
    CU_ASSERT(zka_config_diff(c, d) & ZKA_DIFF_WORK);
    zka_config_free(d);
    /* a spec changed is a work change */
    d = load_text("{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"work\": {\"items\": "
                  "[\"x\", {\"name\": \"y.1\", \"spec\": \"other\"}]}}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    zka_config_free(c);
    c = load_text("{\"cluster\": \"a\", \"member\": {\"port\": 1}, \"work\": {\"items\": "
                  "[\"x\", {\"name\": \"y.1\", \"spec\": \"one\"}]}}");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(zka_config_diff(c, d), ZKA_DIFF_WORK);
    zka_config_free(d);
    zka_config_free(c);
}

/* The shipped example must stay valid: it is what operators copy. */
static void test_shipped_example(void)
{
    char path[PATH_MAX];
    zka_config *c = NULL;
    zka_config_error err;

    snprintf(path, sizeof(path), "%s/conf/zkcoord.json", ZKA_TOP_SRCDIR);
    CU_ASSERT_EQUAL(zka_config_load(path, &c, &err), 0);
    if (!c) {
        fprintf(stderr, "\n  %s\n", err.text);
        return;
    }
    CU_ASSERT_STRING_EQUAL(c->cluster, "orders");
    CU_ASSERT_TRUE(c->election.enabled);
    CU_ASSERT_EQUAL(c->supervise.when, ZKA_WHILE_LEADER);
    CU_ASSERT_EQUAL(c->n_handlers, 3);
    zka_config_free(c);
    /* the work items example */
    c = NULL;
    snprintf(path, sizeof(path), "%s/conf/zkcoord-items.json", ZKA_TOP_SRCDIR);
    CU_ASSERT_EQUAL(zka_config_load(path, &c, &err), 0);
    if (!c) {
        fprintf(stderr, "\n  %s\n", err.text);
        return;
    }
    CU_ASSERT_EQUAL(c->work.n_items, 12);
    CU_ASSERT_EQUAL(c->supervise.when, ZKA_WHILE_ITEM);
    zka_config_free(c);
}

static void test_event_names(void)
{
    int i;

    for (i = 0; i < ZKA_EV_COUNT; i++)
        CU_ASSERT_EQUAL(zka_event_from_name(zka_event_name((zka_event)i)), i);
    CU_ASSERT_STRING_EQUAL(zka_event_name(ZKA_EV_SESSION_LOST), "session_lost");
    CU_ASSERT_STRING_EQUAL(zka_event_name(ZKA_EV_DRAINED), "drained");
    CU_ASSERT_STRING_EQUAL(zka_event_name(ZKA_EV_UNDRAINED), "undrained");
    CU_ASSERT_EQUAL(zka_event_from_name("undrained"), ZKA_EV_UNDRAINED);
    CU_ASSERT_STRING_EQUAL(zka_event_name(ZKA_EV_ITEM_ASSIGNED), "item_assigned");
    CU_ASSERT_STRING_EQUAL(zka_event_name(ZKA_EV_ITEM_REVOKED), "item_revoked");
    CU_ASSERT_EQUAL(zka_event_from_name("nope"), -1);
    CU_ASSERT_PTR_NULL(zka_event_name(ZKA_EV_COUNT));
}

/* ------------------------------------------------------------ credentials */

/* Issue 11 item 5: the owner is checked as well as the mode. */
static void test_credentials_owner(void)
{
    char why[512], *u = NULL, *pw = NULL;
    zka_config_error err;
    zka_config *c = NULL;

    CU_ASSERT_EQUAL(zka_credentials_read("zk.secret", &u, &pw, why, sizeof(why)), 0);
    CU_ASSERT_STRING_EQUAL(u ? u : "", "app");
    CU_ASSERT_STRING_EQUAL(pw ? pw : "", "s3cret");
    free(u);
    free(pw);
    u = pw = NULL;
    CU_ASSERT_EQUAL_FATAL(write_file("other.secret", "a:b\n", 0600), 0);
    if (geteuid() != 0) {
        /* Only root can give a file away; what a user can do is checked. */
        CU_ASSERT_EQUAL(chown("other.secret", 12345, (gid_t)-1), -1);
        CU_ASSERT_EQUAL(errno, EPERM);
        unlink("other.secret");
        return;
    }
    CU_ASSERT_EQUAL_FATAL(chown("other.secret", 12345, (gid_t)-1), 0);
    CU_ASSERT_EQUAL(zka_credentials_read("other.secret", &u, &pw, why, sizeof(why)), ZKC_EINVAL);
    CU_ASSERT_PTR_NULL(u);
    CU_ASSERT_STRING_EQUAL(why, "other.secret is owned by uid 12345: it must belong to uid 0 or to "
                                "root");
    CU_ASSERT_EQUAL(write_file("zkcoord.json",
                               "{\"cluster\": \"a\",\n \"zookeeper\": {\"auth\": "
                               "{\"credentials_file\": \"other.secret\"}}}",
                               0644),
                    0);
    CU_ASSERT_EQUAL(zka_config_load("zkcoord.json", &c, &err), ZKC_EINVAL);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_STRING_EQUAL(err.text, "zkcoord.json:2:45: zookeeper.auth.credentials_file: "
                                     "other.secret is owned by uid 12345: it must belong to uid 0 "
                                     "or to root");
    unlink("other.secret");
}

/* Without auth the agent has a warning to log; with auth, none. */
static void test_security_warning(void)
{
    zka_config *c = NULL;
    zka_config_error err;
    const char *w;

    CU_ASSERT_EQUAL_FATAL(write_file("zkcoord.json", "{\"cluster\": \"a\"}", 0644), 0);
    CU_ASSERT_EQUAL_FATAL(zka_config_load("zkcoord.json", &c, &err), 0);
    w = zka_config_security_warning(c);
    CU_ASSERT_PTR_NOT_NULL(w);
    CU_ASSERT_PTR_NOT_NULL(w ? strstr(w, "world:anyone:cdrwa") : NULL);
    CU_ASSERT_PTR_NULL(w ? strchr(w, '\n') : NULL); /* one line */
    zka_config_free(c);
    c = NULL;
    CU_ASSERT_EQUAL_FATAL(write_file("zkcoord.json",
                                     "{\"cluster\": \"a\", \"zookeeper\": {\"auth\": "
                                     "{\"credentials_file\": \"zk.secret\"}}}",
                                     0644),
                          0);
    CU_ASSERT_EQUAL_FATAL(zka_config_load("zkcoord.json", &c, &err), 0);
    CU_ASSERT_PTR_NULL(zka_config_security_warning(c));
    zka_config_free(c);
}

/* ---------------------------------------------- --check agrees with runtime */

/* Load `json` (written to zkcoord.json); returns the rc, message in err. */
static int check_text(const char *json, zka_config_error *err)
{
    zka_config *c = NULL;
    int rc;

    if (write_file("zkcoord.json", json, 0644) != 0)
        return -100;
    rc = zka_config_load("zkcoord.json", &c, err);
    zka_config_free(c);
    return rc;
}

static char *repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);

    if (s) {
        memset(s, ch, n);
        s[n] = '\0';
    }
    return s;
}

/* Issue 11 item 7: what registration refuses, --check refuses, with the
 * position of the value and its key. */
static void test_runtime_limits(void)
{
    char *id300 = repeat('i', 300), *big = repeat('m', 70 * 1024), *name65 = repeat('n', 65);
    char *json = malloc(80 * 1024), *eps = malloc(4096);
    zka_config_error err;
    size_t off = 0;
    int i;

    CU_ASSERT_FATAL(id300 && big && name65 && json && eps);
    snprintf(json, 80 * 1024, "{\"cluster\": \"a\",\n \"member\": {\"port\": 1, \"id\": \"%s\"}}",
             id300);
    CU_ASSERT_EQUAL(check_text(json, &err), ZKC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.text, "zkcoord.json:2:30: member.id: expected at most 255 bytes "
                                     "(what a member may register), got 300");
    CU_ASSERT_STRING_EQUAL(err.key, "member.id");

    CU_ASSERT_EQUAL(check_text("{\"cluster\": \"a\",\n \"member\": {\"port\": 1, \"host\": "
                               "\"web\\t1\\u001b[31m\"}}",
                               &err),
                    ZKC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.text,
                           "zkcoord.json:2:32: member.host: control character 0x09 at byte 3: "
                           "a member's host must not hold one");
    CU_ASSERT_EQUAL(check_text("{\"cluster\": \"a\",\n \"member\": {\"port\": 1, \"endpoints\": "
                               "{\"admin\": {\"host\": \"x\\u001by\", \"port\": 2}}}}",
                               &err),
                    ZKC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.text,
                           "zkcoord.json:2:56: member.endpoints.admin.host: control character "
                           "0x1B at byte 1: a member's host must not hold one");

    snprintf(json, 80 * 1024,
             "{\"cluster\": \"a\",\n \"member\": {\"port\": 1,\n  \"metadata\": {\"blob\": "
             "\"%s\"}}}",
             big);
    CU_ASSERT_EQUAL(check_text(json, &err), ZKC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.text,
                           "zkcoord.json:3:15: member.metadata: the member's node data would be "
                           "71831 bytes, above the 65536 a member may register: make the "
                           "metadata smaller");

    snprintf(json, 80 * 1024,
             "{\"cluster\": \"a\", \"member\": {\"port\": 1, \"endpoints\": {\"%s\": {\"port\": "
             "2}}}}",
             name65);
    CU_ASSERT_EQUAL(check_text(json, &err), ZKC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.text, "zkcoord.json:1:54: member.endpoints.nnnnnnnnnnnnnnnnnnnnnnnn"
                                     "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn: expected an "
                                     "endpoint name of at most 64 bytes, got 65");

    for (i = 0; i < 33; i++)
        off += (size_t)snprintf(eps + off, 4096 - off, "%s\"e%d\": {\"port\": %d}", i ? ", " : "",
                                i, i + 1);
    snprintf(json, 80 * 1024,
             "{\"cluster\": \"a\", \"member\": {\"port\": 1, \"endpoints\": {%s}}}", eps);
    CU_ASSERT_EQUAL(check_text(json, &err), ZKC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.text, "zkcoord.json:1:53: member.endpoints: expected at most 32 "
                                     "endpoints, got 33");

    /* Server lists the library refuses (it takes the first ':' as the port's). */
    CU_ASSERT_EQUAL(check_text("{\"cluster\": \"a\", \"zookeeper\": {\"servers\": "
                               "\"[::1]:2181\"}}",
                               &err),
                    ZKC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.text, "zkcoord.json:1:43: zookeeper.servers: refused by "
                                     "libzkcoord: servers: port must be a number ('[::1]:2181')");
    /* Paths the library's path check refuses. */
    CU_ASSERT_EQUAL(check_text("{\"cluster\": \"a\", \"locks\": [{\"name\": \"x\", \"path\": "
                               "\"/a/..\"}]}",
                               &err),
                    ZKC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.text, "zkcoord.json:1:50: locks[0].path: expected an absolute "
                                     "ZooKeeper path, got \"/a/..\"");
    CU_ASSERT_EQUAL(
        check_text("{\"cluster\": \"a\", \"zookeeper\": {\"root\": \"/z\\u0007k\"}}", &err),
        ZKC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.key, "zookeeper.root");
    free(id300);
    free(big);
    free(name65);
    free(json);
    free(eps);
}

/* One member config and the zkc_member_info the agent registers from it. */
static int config_ok(const char *id, const char *host, const char *epname, int n_eps,
                     const char *meta)
{
    size_t cap = 200000, off;
    char *json = malloc(cap);
    zka_config_error err;
    int i, rc;

    if (!json)
        return -1;
    off = (size_t)snprintf(json, cap,
                           "{\"cluster\": \"a\", \"member\": {\"port\": 1, \"id\": "
                           "\"%s\", \"host\": \"%s\", \"metadata\": {\"k\": \"%s\"}, "
                           "\"endpoints\": {",
                           id, host, meta);
    for (i = 0; i < n_eps; i++)
        off += (size_t)snprintf(json + off, cap - off, "%s\"%s%d\": {\"port\": 2}", i ? ", " : "",
                                epname, i);
    snprintf(json + off, cap - off, "}}}");
    rc = check_text(json, &err);
    free(json);
    return rc;
}

static int encode_ok(const char *id, const char *host, const char *epname, int n_eps,
                     const char *meta)
{
    zkc_endpoint eps[64];
    char names[64][128], *md, *out = NULL, why[256];
    size_t len;
    zkc_member_info mi;
    int i, rc;

    if (!(md = malloc(strlen(meta) + 16)))
        return -1;
    sprintf(md, "{\"k\":\"%s\"}", meta);
    memset(&mi, 0, sizeof(mi));
    mi.id = id;
    mi.host = host;
    mi.port = 1;
    for (i = 0; i < n_eps && i < 64; i++) {
        snprintf(names[i], sizeof(names[i]), "%s%d", epname, i);
        eps[i].name = names[i];
        eps[i].host = host;
        eps[i].port = 2;
    }
    mi.endpoints = eps;
    mi.n_endpoints = n_eps;
    mi.metadata = md;
    rc = zkc__payload_encode(&mi, ZKC_PAYLOAD_DEFAULT_MAX, &out, &len, why, sizeof(why));
    free(out);
    free(md);
    return rc;
}

/* Each limit on both sides of its boundary: the config loader and the
 * encoder registration runs must say the same. */
static void test_runtime_agreement(void)
{
    char *id255 = repeat('i', 255), *id256 = repeat('i', 256), *h255 = repeat('h', 255);
    char *h256 = repeat('h', 256), *n63 = repeat('n', 63), *n64 = repeat('n', 64);
    char *meta;
    size_t lo = 60000, hi = 66000;

    CU_ASSERT_FATAL(id255 && id256 && h255 && h256 && n63 && n64);
    /* The metadata length at which the payload reaches the cap exactly. */
    while (lo + 1 < hi) {
        size_t mid = (lo + hi) / 2;

        meta = repeat('m', mid);
        if (encode_ok("x", "h", "e", 1, meta) == 0)
            lo = mid;
        else
            hi = mid;
        free(meta);
    }
    {
        struct {
            const char *id, *host, *ep;
            int n_eps;
            size_t meta;
        } cases[] = {
            {id255, "h", "e", 1, 1},    {id256, "h", "e", 1, 1}, {"x", h255, "e", 1, 1},
            {"x", h256, "e", 1, 1},     {"x", "h", n63, 10, 1},  {"x", "h", n64, 10, 1},
            {"x", "h", "e", 32, 1},     {"x", "h", "e", 33, 1},  {"x", "h", "e", 1, lo},
            {"x", "h", "e", 1, lo + 1},
        };
        size_t i;

        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            int accept, want;

            meta = repeat('m', cases[i].meta);
            want = encode_ok(cases[i].id, cases[i].host, cases[i].ep, cases[i].n_eps, meta);
            accept = config_ok(cases[i].id, cases[i].host, cases[i].ep, cases[i].n_eps, meta);
            CU_ASSERT_EQUAL(accept == 0, want == 0);
            /* Every pair straddles its limit: one side passes, the other not. */
            CU_ASSERT_EQUAL(want == 0, i % 2 == 0);
            if ((accept == 0) != (want == 0))
                fprintf(stderr, "\n  case %zu: config %d, runtime %d\n", i, accept, want);
            free(meta);
        }
    }
    free(id255);
    free(id256);
    free(h255);
    free(h256);
    free(n63);
    free(n64);
}

/* The position index at scale: an error at the 80,000th array element and
 * one at the last of 40,000 object keys still point at the right spot. */
static void test_large_positions(void)
{
    size_t cap = 1 << 20, off;
    char *json = malloc(cap);
    zka_config_error err;
    int i;

    CU_ASSERT_FATAL(json != NULL);
    off = (size_t)snprintf(json, cap,
                           "{\"cluster\": \"a\", \"member\": {\"port\": 1},\n"
                           "\"supervise\": {\"while\": \"member\", \"args\": [\"x\"");
    for (i = 1; i < 80000; i++)
        off += (size_t)snprintf(json + off, cap - off, i % 10 ? ", \"a\"" : ",\n\"a\"");
    snprintf(json + off, cap - off, ", 7]}}");
    CU_ASSERT_EQUAL(check_text(json, &err), ZKC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.text,
                           "zkcoord.json:8001:51: supervise.args[80000]: expected a string, got 7");

    off = (size_t)snprintf(json, cap,
                           "{\"cluster\": \"a\", \"member\": {\"port\": 1},\n"
                           "\"supervise\": {\"while\": \"member\", \"args\": [\"x\"], "
                           "\"env\": {");
    for (i = 0; i < 40000; i++)
        off += (size_t)snprintf(json + off, cap - off, "%s\"V%d\": \"v\"", i ? ",\n" : "", i);
    snprintf(json + off, cap - off, ", \"9bad\": \"v\"}}}");
    CU_ASSERT_EQUAL(check_text(json, &err), ZKC_EINVAL);
    CU_ASSERT_STRING_EQUAL(err.text, "zkcoord.json:40001:16: supervise.env.9bad: expected an "
                                     "environment variable name [A-Za-z_][A-Za-z0-9_]*");
    free(json);
}

/* ------------------------------------------------------------ drain notes */

/* Peer data: whatever another client wrote in a drain note. */
static void test_drain_parse(void)
{
    zka_drain_note n;
    char big[ZKA_DRAIN_DATA_MAX + 64], reason[600], doc[1000], *path;
    int i;

    {
        const char *ok = "{\"reason\":\"kernel\",\"since\":1795781000000,\"by\":\"ops@h1\"}";
        zka_drain_parse(ok, (int)strlen(ok), &n);
    }
    CU_ASSERT_STRING_EQUAL(n.reason, "kernel");
    CU_ASSERT_STRING_EQUAL(n.by, "ops@h1");
    CU_ASSERT_EQUAL(n.since_ms, 1795781000000LL);
    CU_ASSERT_EQUAL(n.malformed, 0);
    zka_drain_parse(NULL, 0, &n); /* an empty node: drained, no reason */
    CU_ASSERT_EQUAL(n.malformed, 0);
    CU_ASSERT_STRING_EQUAL(n.reason, "");
    zka_drain_parse("\x01not json", 9, &n);
    CU_ASSERT_EQUAL(n.malformed, 1);
    zka_drain_parse("[1,2]", 5, &n);
    CU_ASSERT_EQUAL(n.malformed, 1);
    zka_drain_parse("{\"reason\":7,\"since\":-1}", 23, &n);
    CU_ASSERT_EQUAL(n.malformed, 1);
    CU_ASSERT_STRING_EQUAL(n.reason, "");
    CU_ASSERT_EQUAL(n.since_ms, 0);
    zka_drain_parse("{\"reason\":\"a\xff\"}", 15, &n); /* not UTF-8: jansson refuses */
    CU_ASSERT_EQUAL(n.malformed, 1);
    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"reason\":\"x\"}", 14);
    zka_drain_parse(big, (int)sizeof(big), &n); /* above the cap: not parsed */
    CU_ASSERT_EQUAL(n.malformed, 1);
    CU_ASSERT_STRING_EQUAL(n.reason, "");
    /* A reason of 300 bytes of 3-byte characters is cut at a character. */
    for (i = 0; i < 100; i++)
        memcpy(reason + 3 * i, "\xe2\x82\xac", 3);
    reason[300] = '\0';
    snprintf(doc, sizeof(doc), "{\"reason\":\"%s\"}", reason);
    zka_drain_parse(doc, (int)strlen(doc), &n);
    CU_ASSERT_EQUAL(n.malformed, 0);
    CU_ASSERT_EQUAL(strlen(n.reason), 255); /* 85 whole characters */
    CU_ASSERT_EQUAL(memcmp(n.reason, reason, 255), 0);
    CU_ASSERT_PTR_NULL(zka_drain_reason_check("kernel upgrade"));
    CU_ASSERT_PTR_NOT_NULL(zka_drain_reason_check(reason)); /* 300 bytes */
    CU_ASSERT_PTR_NOT_NULL(zka_drain_reason_check("a\xff"));
    path = zka_drain_folder("/zkcoord", "orders");
    CU_ASSERT_STRING_EQUAL(path, "/zkcoord/orders/drain");
    free(path);
    path = zka_drain_folder("/", "orders");
    CU_ASSERT_STRING_EQUAL(path, "/orders/drain");
    free(path);
}

int main(void)
{
    CU_pSuite s;
    unsigned failed;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    s = CU_add_suite("agent_config", suite_init, suite_clean);
    if (!s || !CU_add_test(s, "bad files: exact messages", test_bad_table) ||
        !CU_add_test(s, "missing file", test_missing_file) ||
        !CU_add_test(s, "good file round-trips", test_good_roundtrip) ||
        !CU_add_test(s, "defaults", test_defaults) || !CU_add_test(s, "diff", test_diff) ||
        !CU_add_test(s, "metrics section", test_metrics_section) ||
        !CU_add_test(s, "work section", test_work_section) ||
        !CU_add_test(s, "work items", test_work_items) ||
        !CU_add_test(s, "conf/zkcoord.json is valid", test_shipped_example) ||
        !CU_add_test(s, "event names", test_event_names) ||
        !CU_add_test(s, "drain notes: hostile data, caps", test_drain_parse) ||
        !CU_add_test(s, "--check refuses what registration refuses", test_runtime_limits) ||
        !CU_add_test(s, "limits agree with the payload encoder", test_runtime_agreement) ||
        !CU_add_test(s, "positions at 80k elements and 40k keys", test_large_positions) ||
        !CU_add_test(s, "credentials: owner checked", test_credentials_owner) ||
        !CU_add_test(s, "no auth: one warning line", test_security_warning)) {
        fprintf(stderr, "cannot register tests: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
