// The release command: runs once per deployment, before the rollout, with the new build and
// config. Its output shows in `mesh deploy`. FAIL_RELEASE=1 makes it fail, to see a deployment
// stop here while the running version keeps serving.
console.log(`release: preparing ${process.env.GREETING || "hello"} (migrations would run here)`);
if (process.env.FAIL_RELEASE === "1") {
  console.error("release: failing on purpose (FAIL_RELEASE=1)");
  process.exit(1);
}
console.log("release: done");
