// Widemesh example: like examples/nodejs, with the ms package to show npm dependencies installed.
const http = require("http");
const ms = require("ms");

const port = Number(process.env.PORT || 8080);
const started = Date.now();
const server = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.end("ok\n");
  } else if (req.url === "/") {
    res.end(`hello from nodejs with dependencies (up ${ms(Date.now() - started)})\n`);
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
