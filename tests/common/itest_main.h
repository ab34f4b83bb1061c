#ifndef ZKC_ITEST_MAIN_H
#define ZKC_ITEST_MAIN_H

/* The main of an integration test program: start a local ZooKeeper of
 * `nservers` (1 or 3) through the harness into tu_zk, register the suites
 * with `register_suites` (returns 0 or -1), run them with CUnit's basic
 * runner, stop the servers. Exit status 0 only when every test passed. */
int tu_integration_main(const char *name, int nservers, int (*register_suites)(void));

#endif
