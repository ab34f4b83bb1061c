// Curator's InterProcessMutex, driven from tests/interop/curator-mutex.sh to
// show that a zkcoord mutex and a Curator mutex on one path exclude each
// other and share one FIFO queue.
//
//   java CuratorMutex SERVERS PATH hold     acquire, print HELD, wait for a
//                                           line on stdin, release, print RELEASED
//   java CuratorMutex SERVERS PATH try MS   print WAITING, acquire with a
//                                           timeout, print ACQUIRED or TIMEOUT
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.ExponentialBackoffRetry;

public class CuratorMutex {
    public static void main(String[] args) throws Exception {
        String servers = args[0], path = args[1], mode = args[2];
        CuratorFramework client = CuratorFrameworkFactory.newClient(
                servers, 10000, 10000, new ExponentialBackoffRetry(100, 3));
        client.start();
        if (!client.blockUntilConnected(30, TimeUnit.SECONDS)) {
            System.out.println("UNREACHABLE");
            System.exit(1);
        }
        InterProcessMutex mutex = new InterProcessMutex(client, path);
        int status = 0;
        if (mode.equals("hold")) {
            mutex.acquire();
            System.out.println("HELD");
            System.out.flush();
            new BufferedReader(new InputStreamReader(System.in)).readLine();
            mutex.release();
            System.out.println("RELEASED");
        } else if (mode.equals("try")) {
            System.out.println("WAITING");
            System.out.flush();
            if (mutex.acquire(Long.parseLong(args[3]), TimeUnit.MILLISECONDS)) {
                System.out.println("ACQUIRED");
                mutex.release();
            } else {
                System.out.println("TIMEOUT");
                status = 3;
            }
        } else {
            System.out.println("usage: CuratorMutex SERVERS PATH hold|try MS");
            status = 2;
        }
        System.out.flush();
        client.close();
        System.exit(status);
    }
}
