// The web process: answers on $PORT. GREETING (a config variable) changes the answer, so a config
// change rolling out a new release is visible; UNHEALTHY=1 fails /healthz, to see a rollout that
// never becomes healthy roll back.
const http = require("http");

const port = Number(process.env.PORT || 8080);
const greeting = process.env.GREETING || "hello";
const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.statusCode = process.env.UNHEALTHY === "1" ? 500 : 200;
    res.end(res.statusCode === 200 ? "ok\n" : "unhealthy on purpose\n");
  } else if (req.url === "/") {
    res.end(`${greeting} from procfile (web)\n`);
  } else {
    res.statusCode = 404;
    res.end("not found\n");
  }
});
server.listen(port, "0.0.0.0", () => console.log(`web listening on 0.0.0.0:${port}`));
process.on("SIGTERM", () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections?.();
});
