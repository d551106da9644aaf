// The worker process: no port; logs a line every 5 seconds until SIGTERM.
let n = 0;
const timer = setInterval(() => console.log(`worker tick ${++n}`), 5000);
console.log("worker started");
process.on("SIGTERM", () => {
  clearInterval(timer);
  console.log("worker stopped");
  process.exit(0);
});
