#ifndef ZKC_INTEGRATION_SUITES_H
#define ZKC_INTEGRATION_SUITES_H
int register_session_suite(void);
#endif
