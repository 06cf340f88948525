// Preloaded (`--import ./bench/orphan-guard.ts`) into the processes a benchmark starts (coordinator, agent):
// when the benchmark itself dies without cleaning up (SIGKILL, a crash), its children stop too instead of
// running on in the background. It changes nothing else; the timer is unref'd.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid === parent) return;
  process.kill(process.pid, "SIGTERM"); // the coordinator and the agent shut down gracefully on SIGTERM
  setTimeout(() => process.exit(1), 10_000).unref();
}, 500).unref();
