#include <CUnit/CUnit.h>
#include <string.h>

#include "zkcoord/zkcoord.h"
#include "suites.h"

static zkc_session_opts valid(void)
{
    zkc_session_opts o;

    zkc_session_opts_init(&o);
    o.servers = "127.0.0.1:2181,10.0.0.2:2182";
    return o;
}

static void test_defaults(void)
{
    zkc_session_opts o;

    memset(&o, 0x5a, sizeof(o));
    zkc_session_opts_init(&o);
    CU_ASSERT_PTR_NULL(o.servers);
    CU_ASSERT_EQUAL(o.session_timeout_ms, 10000);
    CU_ASSERT_PTR_NULL(o.root);
    CU_ASSERT_PTR_NULL(o.digest_user);
    CU_ASSERT_EQUAL(o.acl, ZKC_ACL_DEFAULT);
    CU_ASSERT_EQUAL(o.log_level, ZKC_LOG_WARN);
    CU_ASSERT_EQUAL(o.zk_log_level, ZKC_LOG_DEBUG);
    CU_ASSERT_PTR_NULL(o.log_fn);
}

static void expect_bad(zkc_session_opts o, const char *field)
{
    char why[256] = "";

    CU_ASSERT_EQUAL(zkc_session_opts_check(&o, why, sizeof(why)), ZKC_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, field));
}

static void test_valid(void)
{
    zkc_session_opts o = valid();
    char why[256] = "";

    CU_ASSERT_EQUAL(zkc_session_opts_check(&o, why, sizeof(why)), 0);
    o.root = "/prod/orders";
    o.digest_user = "alice";
    o.digest_password = "";
    o.acl = ZKC_ACL_CREATOR_WORLD_READ;
    o.session_timeout_ms = 0;
    CU_ASSERT_EQUAL(zkc_session_opts_check(&o, why, sizeof(why)), 0);
    CU_ASSERT_EQUAL(zkc_session_opts_check(&o, NULL, 0), 0);
}

static void test_servers(void)
{
    zkc_session_opts o = valid();

    o.servers = NULL;
    expect_bad(o, "servers");
    o.servers = "";
    expect_bad(o, "servers");
    o.servers = "localhost";
    expect_bad(o, "servers");
    o.servers = "localhost:";
    expect_bad(o, "servers");
    o.servers = ":2181";
    expect_bad(o, "servers");
    o.servers = "localhost:0";
    expect_bad(o, "servers");
    o.servers = "localhost:65536";
    expect_bad(o, "servers");
    o.servers = "localhost:21x1";
    expect_bad(o, "servers");
    o.servers = "a:1,,b:2";
    expect_bad(o, "servers");
}

static void test_other_fields(void)
{
    zkc_session_opts o = valid();

    o.session_timeout_ms = -1;
    expect_bad(o, "session_timeout_ms");
    o = valid();
    o.root = "prod";
    expect_bad(o, "root");
    o.root = "/prod/";
    expect_bad(o, "root");
    o.root = "/";
    expect_bad(o, "root");
    o.root = "/a//b";
    expect_bad(o, "root");
    o = valid();
    o.digest_user = "alice";
    expect_bad(o, "digest_password");
    o.digest_user = "al:ice";
    o.digest_password = "x";
    expect_bad(o, "digest_user");
    o.digest_user = NULL;
    expect_bad(o, "digest_user");
    o = valid();
    o.acl = ZKC_ACL_CREATOR_WORLD_READ;
    expect_bad(o, "acl");
    o.acl = (zkc_acl_mode)7;
    expect_bad(o, "acl");
    o = valid();
    o.log_level = (zkc_log_level)9;
    expect_bad(o, "log_level");
}

static void test_new_rejects_bad_options(void)
{
    zkc_session_opts o = valid();
    zkc_session *s = (zkc_session *)&o; /* sentinel: must stay untouched */

    o.servers = "nohost";
    o.log_level = ZKC_LOG_ERROR;
    o.log_fn = NULL;
    CU_ASSERT_EQUAL(zkc_session_new(&s, &o), ZKC_EINVAL);
    CU_ASSERT_PTR_EQUAL(s, (zkc_session *)&o);
    CU_ASSERT_EQUAL(zkc_session_new(NULL, &o), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc_session_close(NULL), 0);
}

int register_session_opts_suite(void)
{
    CU_pSuite s = CU_add_suite("session options", NULL, NULL);

    if (!s || !CU_add_test(s, "defaults", test_defaults) || !CU_add_test(s, "valid", test_valid) ||
        !CU_add_test(s, "servers", test_servers) ||
        !CU_add_test(s, "other fields", test_other_fields) ||
        !CU_add_test(s, "new rejects bad options", test_new_rejects_bad_options))
        return -1;
    return 0;
}
