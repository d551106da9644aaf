// One run of the cron job: prints a line and exits 0. The schedule is the service's, not the app's.
console.log(`tick at ${new Date().toISOString()}`);
