// The worker thread of file transfers (file-work.ts starts it): handles FileJobs requests in
// order and answers each with the same id; says it is ready once loaded.
import { parentPort } from "node:worker_threads";
import { FileJobs, type JobRequest } from "./file-jobs.js";

const port = parentPort;
if (port) {
  const jobs = new FileJobs();
  port.on("message", (m: { id: number; request: JobRequest }) => {
    const { reply, transfer } = jobs.handle(m.request);
    port.postMessage({ id: m.id, reply }, transfer);
  });
  port.postMessage({ ready: true });
}
