// The Curator side of tests/interop/curator-counter.sh: increments one
// counter with Curator 5.4's own recipes, concurrently with zkcoord.
//
//   java CuratorCounter SERVERS PATH int|long add N THREADS
//       THREADS clients, each N increments of 1: SharedCount (int) with
//       trySetCount(versioned, v + 1) until it wins, or
//       DistributedAtomicLong (long) increment() until succeeded().
//       Prints "DONE <increments>".
//   java CuratorCounter SERVERS PATH int|long get
//       Prints "VALUE <n>" as Curator decodes the node.
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.shared.SharedCount;
import org.apache.curator.framework.recipes.shared.VersionedValue;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.retry.RetryNTimes;

public class CuratorCounter {
    static CuratorFramework client(String servers) throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.newClient(servers, 20000, 15000,
                new ExponentialBackoffRetry(100, 5));
        c.start();
        if (!c.blockUntilConnected(30, java.util.concurrent.TimeUnit.SECONDS))
            throw new IllegalStateException("not connected");
        return c;
    }

    static long addInt(CuratorFramework c, String path, int n) throws Exception {
        long done = 0;
        try (SharedCount sc = new SharedCount(c, path, 0)) {
            sc.start();
            for (int i = 0; i < n; i++) {
                for (;;) {
                    VersionedValue<Integer> vv = sc.getVersionedValue();
                    if (sc.trySetCount(vv, vv.getValue() + 1))
                        break;
                }
                done++;
            }
        }
        return done;
    }

    static long addLong(CuratorFramework c, String path, int n) throws Exception {
        long done = 0;
        DistributedAtomicLong dal = new DistributedAtomicLong(c, path, new RetryNTimes(1000, 0));
        for (int i = 0; i < n; i++) {
            for (;;) {
                AtomicValue<Long> r = dal.increment();
                if (r.succeeded())
                    break;
            }
            done++;
        }
        return done;
    }

    public static void main(String[] a) throws Exception {
        String servers = a[0], path = a[1];
        boolean isInt = a[2].equals("int");
        if (a[3].equals("get")) {
            try (CuratorFramework c = client(servers)) {
                long v;
                if (isInt) {
                    try (SharedCount sc = new SharedCount(c, path, 0)) {
                        sc.start();
                        v = sc.getCount();
                    }
                } else {
                    v = new DistributedAtomicLong(c, path, new RetryNTimes(3, 10)).get().postValue();
                }
                System.out.println("VALUE " + v);
            }
            return;
        }
        int n = Integer.parseInt(a[4]), threads = Integer.parseInt(a[5]);
        AtomicLong total = new AtomicLong();
        List<Thread> ts = new ArrayList<>();
        List<Throwable> errors = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            Thread th = new Thread(() -> {
                try (CuratorFramework c = client(servers)) {
                    total.addAndGet(isInt ? addInt(c, path, n) : addLong(c, path, n));
                } catch (Throwable e) {
                    synchronized (errors) {
                        errors.add(e);
                    }
                }
            });
            ts.add(th);
            th.start();
        }
        for (Thread th : ts)
            th.join();
        for (Throwable e : errors)
            e.printStackTrace();
        System.out.println("DONE " + total.get());
        System.exit(errors.isEmpty() ? 0 : 1);
    }
}
