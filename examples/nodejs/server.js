// Widemesh example: answers GET / and GET /healthz on $PORT, stops cleanly on SIGTERM.
const http = require("http");

const port = Number(process.env.PORT || 8080);
const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.end("ok\n");
  } else if (req.url === "/") {
    res.end("hello from nodejs\n");
  } else {
    res.statusCode = 404;
    res.end("not found\n");
  }
});
server.listen(port, "0.0.0.0", () => console.log(`listening on 0.0.0.0:${port}`));
process.on("SIGTERM", () => {
  console.log("SIGTERM: closing");
  server.close(() => process.exit(0));
  server.closeIdleConnections?.();
});
