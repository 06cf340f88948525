// Preloaded into the coordinator child (`node --import tsx --import ./bench/profile-hook.ts coordinator/main.ts`)
// by the relay benchmark: SIGUSR2 starts V8's CPU profiler (and writes <dir>/coordinator-N.started), the next
// SIGUSR2 stops it and writes <dir>/coordinator-N.cpuprofile. Unlike --cpu-prof, this covers only the window
// the benchmark chooses, not start-up, migrations and ramp-up.
import { renameSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";

const dir = process.env.BENCH_PROFILE_DIR;
const intervalUs = Number(process.env.BENCH_PROFILE_INTERVAL_US ?? 1000);

if (dir) {
  // connected and enabled at start, so that a SIGUSR2 under load only has to start the sampler
  const session = new Session();
  session.connect();
  let ready = session
    .post("Profiler.enable")
    .then(() => session.post("Profiler.setSamplingInterval", { interval: intervalUs }));
  let running = false;
  let count = 0;
  process.on("SIGUSR2", () => {
    ready = ready.then(async () => {
      if (!running) {
        running = true;
        await session.post("Profiler.start");
        writeFileSync(join(dir, `coordinator-${count + 1}.started`), String(Date.now()));
        return;
      }
      running = false;
      const { profile } = await session.post("Profiler.stop");
      const file = join(dir, `coordinator-${++count}.cpuprofile`);
      // written under another name first, so the benchmark never reads half a file
      writeFileSync(`${file}.partial`, JSON.stringify(profile));
      renameSync(`${file}.partial`, file);
    });
  });
}
