#!/bin/bash
# The real Prometheus scrapes real zkcoord agents (issue 13 item 1): values
# follow the cluster (leader, members, handler runs, leader change) and
# hostile clients on the endpoint block neither scrapes nor the agent's
# work. The scenario is tests/interop/prometheus_check.py, run inside a
# ZooKeeper from the harness. A missing prometheus binary is a failure:
# scripts/install-deps installs the Debian package.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
command -v prometheus >/dev/null ||
    { echo "FAIL: prometheus not found (install the Debian package prometheus: scripts/install-deps)"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 not found"; exit 1; }
export top_builddir
exec "$top_builddir/tests/harness/zkharness" run -q -- \
    python3 "$top_srcdir/tests/interop/prometheus_check.py"
