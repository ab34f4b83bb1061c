// Curator's DistributedAtomicLong beside bench/bench_counter, against a
// server someone else runs (bench/peers/run.sh starts one). Prints figures;
// never passes or fails on time.
//
//   java CuratorCounterBench SERVERS [ADDS [SESSIONS]]      defaults 500, 10
//
// (1) uncontended: one client, increment() ADDS times: ms per add, requests
//     per add.
// (2) contended: SESSIONS clients (one CuratorFramework each), ADDS
//     increments each, started together: increments/s, requests per
//     increment. The optimistic retry policy is RetryNTimes(1000, 0) (no
//     sleep between tries, as zkcoord's add loop; no promotion to a lock);
//     an increment whose tries all lost is tried again and counted once.
// Requests from mntr zk_packets_received: the delta around the run, less one
// packet for the mntr call itself and one closeSession per client.
// The last line, "SUMMARY ...", is for run.sh's table.
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.retry.RetryNTimes;

public class CuratorCounterBench {
    static String servers;

    static long packets() throws Exception {
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
                if (kv.length == 2 && kv[0].equals("zk_packets_received"))
                    return Long.parseLong(kv[1].trim());
            }
        }
        throw new IllegalStateException("no zk_packets_received in mntr");
    }

    static CuratorFramework client() throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.newClient(servers, 20000, 15000,
                new ExponentialBackoffRetry(100, 5));
        c.start();
        if (!c.blockUntilConnected(30, TimeUnit.SECONDS))
            throw new IllegalStateException("not connected");
        return c;
    }

    // n clients, adds increments each, started together: {ms, requests, failures}
    static long[] run(String path, int n, int adds) throws Exception {
        List<CuratorFramework> clients = new ArrayList<>();
        for (int i = 0; i < n; i++)
            clients.add(client());
        CountDownLatch go = new CountDownLatch(1);
        AtomicInteger failures = new AtomicInteger();
        List<Thread> ts = new ArrayList<>();
        for (CuratorFramework c : clients) {
            Thread t = new Thread(() -> {
                DistributedAtomicLong dal = new DistributedAtomicLong(c, path, new RetryNTimes(1000, 0));
                try {
                    go.await();
                    for (int i = 0; i < adds; i++)
                        while (!dal.increment().succeeded())
                            ;
                } catch (Exception e) {
                    failures.incrementAndGet();
                }
            });
            ts.add(t);
            t.start();
        }
        long p0 = packets();
        long t0 = System.nanoTime();
        go.countDown();
        for (Thread t : ts)
            t.join();
        long ms = (System.nanoTime() - t0) / 1000000;
        for (CuratorFramework c : clients)
            c.close();
        long reqs = packets() - p0 - 1 - n;
        return new long[] {ms, reqs, failures.get()};
    }

    public static void main(String[] a) throws Exception {
        servers = a[0];
        int adds = a.length > 1 ? Integer.parseInt(a[1]) : 500;
        int sessions = a.length > 2 ? Integer.parseInt(a[2]) : 10;
        long[] one = run("/bench/curator-counter-1", 1, adds);
        System.out.printf("uncontended: 1 client, %d increments%n", adds);
        System.out.printf("  ms per add               %.3f%n", (double) one[0] / adds);
        System.out.printf("  requests per add         %.2f%n", (double) one[1] / adds);
        long[] many = run("/bench/curator-counter-n", sessions, adds);
        long value;
        try (CuratorFramework c = client()) {
            value = new DistributedAtomicLong(c, "/bench/curator-counter-n", new RetryNTimes(3, 10))
                    .get().postValue();
        }
        double incs = (double) sessions * adds;
        System.out.printf("contended: %d clients x %d increments on one counter%n", sessions, adds);
        System.out.printf("  increments/s             %.0f%n", many[0] > 0 ? incs * 1000 / many[0] : 0.0);
        System.out.printf("  requests per increment   %.2f%n", many[1] / incs);
        System.out.printf("  final value              %d (expected %d)%n", value, sessions * adds);
        System.out.printf("  failed clients           %d%n", one[2] + many[2]);
        System.out.printf("SUMMARY curator %.3f %.2f %.0f %.2f%n", (double) one[0] / adds,
                (double) one[1] / adds, many[0] > 0 ? incs * 1000 / many[0] : 0.0, many[1] / incs);
    }
}
