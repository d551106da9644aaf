// Widemesh example: the JDK's built-in HTTP server on $PORT, no build tool: the java buildpack
// compiles plain .java sources with javac into app.jar. Stops cleanly on SIGTERM.
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

public class App {
    public static void main(String[] args) throws IOException {
        int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8080"));
        HttpServer server = HttpServer.create(new InetSocketAddress("0.0.0.0", port), 0);
        server.createContext("/", App::handle);
        server.start();
        // The JVM runs shutdown hooks on SIGTERM, then exits.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.stop(1);
            System.out.println("stopped");
        }));
        System.out.println("listening on 0.0.0.0:" + port);
    }

    private static void handle(HttpExchange ex) throws IOException {
        String path = ex.getRequestURI().getPath();
        int status = 200;
        String body;
        if (path.equals("/healthz")) {
            body = "ok\n";
        } else if (path.equals("/")) {
            body = "hello from java\n";
        } else {
            status = 404;
            body = "not found\n";
        }
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "text/plain");
        ex.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(bytes);
        }
    }
}
