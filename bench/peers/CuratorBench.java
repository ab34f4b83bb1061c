// Curator figures to set beside bench/bench_lock and bench/bench_election,
// against a server someone else runs (bench/peers/run.sh starts one through
// the harness). Prints figures; never passes or fails on time.
//
//   java CuratorBench SERVERS [CYCLES [ROUNDS]]      defaults 2000, 200
//
// (1) InterProcessMutex, uncontended: acquire+release on one path, one
//     session, CYCLES times: cycles/s, ms per cycle, requests per cycle.
// (2) LeaderLatch hand-off with 2 and 10 latches on one path, one session
//     (CuratorFramework) each: close the leader's latch and time until the
//     next latch's LeaderLatchListener.isLeader() fires (a CountDownLatch,
//     no polling); the closed one is recreated at the back. Median/p90 over
//     ROUNDS rounds, requests per hand-off.
// Requests come from the server's mntr (zk_packets_received): the delta
// around a loop, less the packets the mntr calls themselves add (measured
// as the delta of two back-to-back mntr calls; one per call).
// The last line, "SUMMARY ...", is for run.sh's table.
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.ExponentialBackoffRetry;

public class CuratorBench {
    static String servers;
    static long mntrSelf; // packets one mntr call adds to zk_packets_received

    static long mntr(String key) throws Exception {
        String first = servers.split(",")[0];
        int colon = first.lastIndexOf(':');
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(first.substring(0, colon),
                    Integer.parseInt(first.substring(colon + 1))), 5000);
            s.setSoTimeout(5000);
            OutputStream out = s.getOutputStream();
            out.write("mntr".getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = s.getInputStream();
            ByteArrayOutputStream buf = new ByteArrayOutputStream();
            byte[] b = new byte[4096];
            int r;
            while ((r = in.read(b)) > 0)
                buf.write(b, 0, r);
            for (String line : buf.toString(StandardCharsets.US_ASCII).split("\n")) {
                String[] kv = line.split("\t");
                if (kv.length == 2 && kv[0].equals(key))
                    return Long.parseLong(kv[1].trim().split("\\.")[0]);
            }
        }
        throw new IllegalStateException("mntr: no " + key);
    }

    static long packets() throws Exception {
        return mntr("zk_packets_received");
    }

    static CuratorFramework client() throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.newClient(
                servers, 30000, 10000, new ExponentialBackoffRetry(100, 3));
        c.start();
        if (!c.blockUntilConnected(30, TimeUnit.SECONDS))
            throw new IllegalStateException("cannot connect to " + servers);
        return c;
    }

    static double pct(double[] sorted, int p) {
        return sorted[(sorted.length * p) / 100];
    }

    // ------------------------------------------------------- uncontended

    static double[] uncontended(int cycles) throws Exception {
        CuratorFramework c = client();
        InterProcessMutex m = new InterProcessMutex(c, "/bench-curator/uncontended");
        for (int i = 0; i < 500; i++) { // warm-up: parents, both JITs
            m.acquire();
            m.release();
        }
        long p0 = packets();
        long t0 = System.nanoTime();
        for (int i = 0; i < cycles; i++) {
            if (!m.acquire(10, TimeUnit.SECONDS))
                throw new IllegalStateException("uncontended acquire timed out");
            m.release();
        }
        long t1 = System.nanoTime();
        long p1 = packets() - mntrSelf; // the mntr after the loop counts once
        double cycleMs = (t1 - t0) / 1e6 / cycles;
        double req = (double) (p1 - p0) / cycles;
        System.out.printf("uncontended InterProcessMutex acquire+release (%d cycles, one session)%n",
                cycles);
        System.out.printf("  cycles/s                 %.0f%n", 1000 / cycleMs);
        System.out.printf("  time per cycle           %.3f ms%n", cycleMs);
        System.out.printf("  requests per cycle       %.2f   (mntr zk_packets_received delta / cycles)%n",
                req);
        c.close();
        return new double[] {1000 / cycleMs, cycleMs, req};
    }

    // ---------------------------------------------------------- hand-off

    static final AtomicReference<CountDownLatch> elected = new AtomicReference<>();
    static final AtomicLong electedAt = new AtomicLong();

    static LeaderLatch latch(CuratorFramework c, String path, String id) throws Exception {
        LeaderLatch l = new LeaderLatch(c, path, id);
        l.addListener(new LeaderLatchListener() {
            public void isLeader() {
                electedAt.set(System.nanoTime());
                CountDownLatch d = elected.get();
                if (d != null)
                    d.countDown();
            }

            public void notLeader() {}
        });
        l.start();
        // Setup, not timed: wait until its node is in (it then reads the
        // children and watches its predecessor), and give that a moment.
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (l.getOurPath() == null) {
            if (System.nanoTime() > end)
                throw new IllegalStateException("latch " + id + " never created its node");
            Thread.sleep(1);
        }
        Thread.sleep(20);
        return l;
    }

    static double handoff(int n, int rounds) throws Exception {
        String path = "/bench-curator/handoff-" + n;
        List<CuratorFramework> cs = new ArrayList<>();
        LeaderLatch[] ls = new LeaderLatch[n];
        for (int i = 0; i < n; i++) {
            cs.add(client());
            ls[i] = latch(cs.get(i), path, "p" + i);
        }
        if (!ls[0].await(10, TimeUnit.SECONDS))
            throw new IllegalStateException("first latch never led");
        double[] ms = new double[rounds];
        long[] req = new long[rounds];
        long pStart = packets();
        for (int r = 0; r < rounds; r++) {
            int leader = -1;
            for (int i = 0; i < n; i++)
                if (ls[i].hasLeadership())
                    leader = i;
            if (leader < 0)
                throw new IllegalStateException("round " + r + ": no leader");
            CountDownLatch d = new CountDownLatch(1);
            elected.set(d);
            long before = packets();
            long t0 = System.nanoTime();
            ls[leader].close(); // CloseMode.SILENT: no notLeader on the closer
            if (!d.await(10, TimeUnit.SECONDS))
                throw new IllegalStateException("round " + r + ": no new leader within 10 s");
            ms[r] = (electedAt.get() - t0) / 1e6;
            elected.set(null);
            req[r] = packets() - before - mntrSelf;
            ls[leader] = latch(cs.get(leader), path, "p" + leader + "-" + r); // at the back
        }
        long pEnd = packets();
        Arrays.sort(ms);
        Arrays.sort(req);
        System.out.printf("  latches %2d  rounds %d  hand-off ms: median %.2f  p90 %.2f  max %.2f  "
                        + "requests per hand-off: median %d (whole round with re-create: %.1f)%n",
                n, rounds, pct(ms, 50), pct(ms, 90), ms[rounds - 1], req[rounds / 2],
                (double) (pEnd - pStart - mntrSelf * (2L * rounds + 1)) / rounds);
        for (LeaderLatch l : ls)
            l.close();
        for (CuratorFramework c : cs)
            c.close();
        return pct(ms, 50);
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: java CuratorBench SERVERS [CYCLES [ROUNDS]]");
            System.exit(2);
        }
        servers = args[0];
        int cycles = args.length > 1 ? Integer.parseInt(args[1]) : 2000;
        int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 200;
        long a = packets();
        mntrSelf = packets() - a;
        System.out.printf("CuratorBench: existing ZooKeeper on %s (mntr adds %d packet per call; "
                + "subtracted)%n%n", servers, mntrSelf);
        double[] u = uncontended(cycles);
        System.out.printf("%nLeaderLatch hand-off (close the leader's latch -> next isLeader(); "
                + "one session each)%n");
        double h2 = handoff(2, rounds);
        double h10 = handoff(10, rounds);
        System.out.printf("SUMMARY curator %.0f %.3f %.2f %.2f %.2f%n", u[0], u[1], u[2], h2, h10);
        System.out.flush();
        System.exit(0);
    }
}
