#include <CUnit/CUnit.h>
#include <string.h>

#include "internal.h"
#include "suites.h"

static const int all_codes[] = {
#define CODE_(name, value, msg) ZKC_##name,
    ZKC_ERRNO_MAP(CODE_)
#undef CODE_
};
#define NCODES ((int)(sizeof(all_codes) / sizeof(all_codes[0])))

static void test_names_and_messages(void)
{
    CU_ASSERT_STRING_EQUAL(zkc_err_name(ZKC_OK), "ZKC_OK");
    CU_ASSERT_STRING_EQUAL(zkc_strerror(ZKC_OK), "success");
    CU_ASSERT_STRING_EQUAL(zkc_err_name(ZKC_ETIMEDOUT), "ZKC_ETIMEDOUT");
    CU_ASSERT_STRING_EQUAL(zkc_strerror(ZKC_ETIMEDOUT), "deadline passed");
    CU_ASSERT_STRING_EQUAL(zkc_err_name(ZKC_EUNREACHABLE), "ZKC_EUNREACHABLE");
    CU_ASSERT_STRING_EQUAL(zkc_strerror(ZKC_ESESSIONLOST), "ZooKeeper session lost (expired)");
    CU_ASSERT_STRING_EQUAL(zkc_err_name(12345), "ZKC_UNKNOWN");
    CU_ASSERT_STRING_EQUAL(zkc_strerror(-9999), "unknown error");
}

static void test_codes_distinct_and_negative(void)
{
    int i, j;

    CU_ASSERT_EQUAL(NCODES, 20);
    for (i = 0; i < NCODES; i++) {
        CU_ASSERT(all_codes[i] < 0);
        CU_ASSERT_STRING_NOT_EQUAL(zkc_err_name(all_codes[i]), "ZKC_UNKNOWN");
        CU_ASSERT_STRING_NOT_EQUAL(zkc_strerror(all_codes[i]), "unknown error");
        CU_ASSERT_EQUAL(strncmp(zkc_err_name(all_codes[i]), "ZKC_E", 5), 0);
        for (j = i + 1; j < NCODES; j++) {
            CU_ASSERT_NOT_EQUAL(all_codes[i], all_codes[j]);
            CU_ASSERT_STRING_NOT_EQUAL(zkc_strerror(all_codes[i]), zkc_strerror(all_codes[j]));
        }
    }
}

static void test_zookeeper_translation(void)
{
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZOK), ZKC_OK);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZNONODE), ZKC_ENONODE);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZNODEEXISTS), ZKC_ENODEEXISTS);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZNOTEMPTY), ZKC_ENOTEMPTY);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZBADVERSION), ZKC_EBADVERSION);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZNOAUTH), ZKC_ENOAUTH);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZCONNECTIONLOSS), ZKC_ECONNLOSS);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZOPERATIONTIMEOUT), ZKC_ECONNLOSS);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZINVALIDSTATE), ZKC_ECONNLOSS);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZSESSIONEXPIRED), ZKC_ESESSIONLOST);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZCLOSING), ZKC_ECLOSED);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZAUTHFAILED), ZKC_EAUTHFAILED);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZBADARGUMENTS), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZUNIMPLEMENTED), ZKC_EZOOKEEPER);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZMARSHALLINGERROR), ZKC_EZOOKEEPER);
    /* What the C client gives every pending request when it drops the
     * connection for a reply out of order or a TLS error: a connection loss
     * (the request may have been applied), never a final error. */
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZRUNTIMEINCONSISTENCY), ZKC_ECONNLOSS);
    CU_ASSERT_EQUAL(zkc__err_from_zk(ZSSLCONNECTIONERROR), ZKC_ECONNLOSS);
    CU_ASSERT_EQUAL(zkc__zk_connloss(ZCONNECTIONLOSS), 1);
    CU_ASSERT_EQUAL(zkc__zk_connloss(ZOPERATIONTIMEOUT), 1);
    CU_ASSERT_EQUAL(zkc__zk_connloss(ZRUNTIMEINCONSISTENCY), 1);
    CU_ASSERT_EQUAL(zkc__zk_connloss(ZSSLCONNECTIONERROR), 1);
    CU_ASSERT_EQUAL(zkc__zk_connloss(ZOK), 0);
    CU_ASSERT_EQUAL(zkc__zk_connloss(ZNONODE), 0);
    CU_ASSERT_EQUAL(zkc__zk_connloss(ZSESSIONEXPIRED), 0);
    CU_ASSERT_EQUAL(zkc__zk_connloss(ZMARSHALLINGERROR), 0);
    /* The server's UNKNOWNSESSION (-12, no name in the C client): a
     * request of a session the server has removed. Seen as a create's
     * result right after a forced expiry (lock_tests, 1 run in ~30). */
    CU_ASSERT_EQUAL(zkc__err_from_zk(-12), ZKC_ESESSIONLOST);
    CU_ASSERT_EQUAL(zkc__zk_expired(-12), 1);
    CU_ASSERT_EQUAL(zkc__zk_expired(ZSESSIONEXPIRED), 1);
    CU_ASSERT_EQUAL(zkc__zk_expired(ZCONNECTIONLOSS), 0);
}

static void test_state_and_level_names(void)
{
    CU_ASSERT_STRING_EQUAL(zkc_conn_state_name(ZKC_CONN_CONNECTED), "connected");
    CU_ASSERT_STRING_EQUAL(zkc_conn_state_name(ZKC_CONN_SUSPENDED), "suspended");
    CU_ASSERT_STRING_EQUAL(zkc_conn_state_name(ZKC_CONN_RECONNECTED), "reconnected");
    CU_ASSERT_STRING_EQUAL(zkc_conn_state_name(ZKC_CONN_LOST), "lost");
    CU_ASSERT_STRING_EQUAL(zkc_conn_state_name(ZKC_CONN_NONE), "none");
    CU_ASSERT_STRING_EQUAL(zkc_log_level_name(ZKC_LOG_ERROR), "error");
    CU_ASSERT_STRING_EQUAL(zkc_log_level_name(ZKC_LOG_DEBUG), "debug");
}

int register_errors_suite(void)
{
    CU_pSuite s = CU_add_suite("errors", NULL, NULL);

    if (!s || !CU_add_test(s, "names and messages", test_names_and_messages) ||
        !CU_add_test(s, "codes distinct and negative", test_codes_distinct_and_negative) ||
        !CU_add_test(s, "ZooKeeper codes translated", test_zookeeper_translation) ||
        !CU_add_test(s, "state and level names", test_state_and_level_names))
        return -1;
    return 0;
}
