// Types for install-failure.mjs (plain JavaScript, so set-up runs before anything is installed).

export interface InstallFailureContext {
  /** The command to run again, e.g. "npm start". */
  retry: string;
  /** Where the install's full output is. */
  logPath: string;
  /** pnpm's exit status. */
  exitCode: number;
  /** npm's nodedir setting, if any. */
  nodedir?: string | null;
  /** A directory whose include/node holds this Node's headers, if one was found. */
  localHeaders?: string | null;
  /** The Node.js version to name (default: this one). */
  nodeVersion?: string;
}

/** The lines that explain a failed install: what failed, what to do, where the log is. */
export function explainInstallFailure(output: string, ctx: InstallFailureContext): string[];
