// The chat screen's view of the uploads live mode continues (core/upload-resume.ts): their
// progress in the transfer line, and a notice once one is on the relay and offered. A refusal or
// a failure arrives as a warning; a relay out of reach shows in the status bar.
import { useEffect } from "react";
import type { Client, UploadProgress } from "../client.js";
import { displayText } from "../text.js";
import type { Transfer } from "./file-commands.js";

export function useResumedUploads(
  client: Client,
  progress: (t: Transfer | null) => void,
  notice: (n: { text: string; error: boolean }) => void,
  refresh: () => void,
): void {
  useEffect(() => {
    const onUpload = (u: UploadProgress) => {
      if (u.state === "uploading") {
        progress({ label: `↑ ${displayText(u.name)}`, done: u.done, total: u.total });
        return;
      }
      progress(null);
      if (u.state === "sent")
        notice({
          text: `sent ${displayText(u.name)} to ${u.contact} (its upload was continued)`,
          error: false,
        });
      refresh();
    };
    client.on("upload", onUpload);
    return () => {
      client.off("upload", onUpload);
    };
  }, [client, progress, notice, refresh]);
}
