/* Suites of the election integration program (tests/integration/election_tests). */
#ifndef ZKC_ELECTION_SUITES_H
#define ZKC_ELECTION_SUITES_H
int register_election_suite(void);
int register_orphan_suite(void);
#endif
