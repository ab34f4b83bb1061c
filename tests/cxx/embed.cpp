// embed.cpp: examples/embed.c written as C++17, built by tests/cxx/check.sh
// against the installed headers and `pkg-config --cflags --libs libzkcoord`
// with -Wall -Wextra -Werror -pedantic, to show that C++ code can include
// and link the library (extern "C", enums, struct initialisation).
//
//   usage: embed-cxx SERVERS PATH ID   campaign like examples/embed.c until SIGINT/SIGTERM
//          embed-cxx --selftest        no server needed: check a few library answers, exit 0/1
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include <pthread.h>

#include <zkcoord/zkcoord.h>

namespace
{

// Handles owned with unique_ptr; close returns an error code we log only.
struct session_closer {
    void operator()(zkc_session *s) const
    {
        int rc = zkc_session_close(s);
        if (rc)
            std::fprintf(stderr, "session close: %s\n", zkc_strerror(rc));
    }
};
struct election_closer {
    void operator()(zkc_election *e) const
    {
        zkc_election_close(e);
    }
};
using session_ptr = std::unique_ptr<zkc_session, session_closer>;
using election_ptr = std::unique_ptr<zkc_election, election_closer>;

extern "C" void on_state(zkc_session *s, zkc_conn_state state, void *)
{
    std::printf("connection %s (session 0x%llx)\n", zkc_conn_state_name(state),
                static_cast<unsigned long long>(zkc_session_id(s)));
    std::fflush(stdout);
}

extern "C" void on_election(zkc_election *, const zkc_election_event *ev, void *user_data)
{
    const std::string &me = *static_cast<const std::string *>(user_data);

    switch (ev->type) {
    case ZKC_ELECTION_ELECTED:
        std::printf("elected: %s leads (fencing token %lld)\n", me.c_str(),
                    static_cast<long long>(ev->token));
        break;
    case ZKC_ELECTION_DEMOTED:
        std::printf("demoted: %s stops leading (%s)\n", me.c_str(),
                    zkc_election_demote_reason_name(ev->reason));
        break;
    case ZKC_ELECTION_LEADER_CHANGED:
        std::printf("leader: %s\n", ev->leader_id ? ev->leader_id : "(nobody)");
        break;
    case ZKC_ELECTION_ERROR:
        std::printf("error: %s; not campaigning any more\n", zkc_strerror(ev->err));
        break;
    }
    std::fflush(stdout);
}

extern "C" void count_log(zkc_log_level, const char *, void *user_data)
{
    // Library threads may log concurrently.
    static_cast<std::atomic<int> *>(user_data)->fetch_add(1);
}

bool expect(const char *what, int got, int want)
{
    std::printf("%s: %s (%s)%s\n", what, zkc_err_name(got), zkc_strerror(got),
                got == want ? "" : " -- unexpected");
    if (got != want)
        std::fprintf(stderr, "%s: expected %s, got %s\n", what, zkc_err_name(want),
                     zkc_err_name(got));
    return got == want;
}

// No server: option checking, and a session against a loopback port nobody
// listens on, which starts the library's threads and the ZooKeeper client.
int selftest()
{
    zkc_session_opts so{};
    char why[256] = "";
    bool ok = true;
    std::atomic<int> logged{0};

    zkc_session_opts_init(&so);
    ok &= so.session_timeout_ms == 10000 && so.log_level == ZKC_LOG_WARN;
    ok &= expect("opts without servers", zkc_session_opts_check(&so, why, sizeof why), ZKC_EINVAL);
    std::printf("  why: %s\n", why);
    ok &= std::strstr(why, "servers") != nullptr;

    so.servers = "127.0.0.1:1"; // nothing listens on port 1: refused at once
    so.session_timeout_ms = 2000;
    so.log_fn = count_log;
    so.log_user_data = &logged;
    {
        zkc_session *raw = nullptr;
        ok &= expect("session_new", zkc_session_new(&raw, &so), ZKC_OK);
        session_ptr s(raw);
        if (s) {
            ok &= zkc_session_state(s.get()) == ZKC_CONN_NONE;
            ok &= expect("wait_connected", zkc_session_wait_connected(s.get(), 1500),
                         ZKC_EUNREACHABLE);
        }
    } // closed here
    std::printf("log lines seen by the C++ sink: %d\n", logged.load());
    std::printf("selftest %s\n", ok ? "passed" : "FAILED");
    return ok ? 0 : 1;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc == 2 && std::strcmp(argv[1], "--selftest") == 0)
        return selftest();
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s SERVERS PATH ID | --selftest\n", argv[0]);
        return 2;
    }
    // Block the stop signals before the library starts its threads (they
    // inherit the mask), then take them synchronously with sigwait().
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    zkc_session_opts so{};
    zkc_session_opts_init(&so);
    so.servers = argv[1];
    so.session_timeout_ms = 10000;
    zkc_session *raw_s = nullptr;
    int rc = zkc_session_new(&raw_s, &so);
    if (rc) {
        std::fprintf(stderr, "session: %s\n", zkc_strerror(rc));
        return 1;
    }
    session_ptr s(raw_s);
    zkc_session_add_listener(s.get(), on_state, nullptr);
    rc = zkc_session_wait_connected(s.get(), 15000);
    if (rc) {
        std::fprintf(stderr, "connect: %s\n", zkc_strerror(rc));
        return 1;
    }

    const std::string me = argv[3];
    zkc_election_opts eo{};
    zkc_election_opts_init(&eo);
    eo.id = me.c_str();
    eo.on_suspend = ZKC_ELECTION_STEP_DOWN;
    eo.fn = on_election;
    eo.user_data = const_cast<std::string *>(&me);
    zkc_election *raw_e = nullptr;
    rc = zkc_election_new(&raw_e, s.get(), argv[2], &eo);
    if (rc) {
        std::fprintf(stderr, "election: %s\n", zkc_strerror(rc));
        return 1;
    }
    election_ptr e(raw_e); // declared after s: closed (leaves the election) before it

    int sig = 0;
    sigwait(&stop_signals, &sig);
    std::printf("signal %d: leaving\n", sig);
    std::fflush(stdout);
    return 0;
}
