#ifndef ZKC_UNIT_SUITES_H
#define ZKC_UNIT_SUITES_H
int register_errors_suite(void);
int register_naming_suite(void);
int register_session_opts_suite(void);
#endif
