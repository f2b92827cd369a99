// The SQLite data directory: private whatever the umask (the directory 0700, every file 0600), and
// the file system's free space, which the storage watches so that it never fills the disk itself.
import { closeSync, constants, existsSync, fchmodSync, mkdirSync, openSync, statfsSync } from "node:fs";

/** Creates `dir` (and its parents) if it is missing; the directory itself is made 0700. */
export function makePrivateDir(dir: string): void {
  if (existsSync(dir)) return;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // mkdir applies the umask to its mode, which may only take permissions away: set them exactly.
  openAndChmod(dir, constants.O_RDONLY | constants.O_DIRECTORY, 0o700);
}

/**
 * Opens `path` for reading and writing, creating it 0600 if it is missing (whatever the umask);
 * returns the file descriptor. An existing file keeps its permissions.
 */
export function openPrivateFile(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    return openSync(path, constants.O_RDWR);
  }
  fchmodSync(fd, 0o600);
  return fd;
}

/** Creates `path` 0600 if it is missing, so that a library that opens it by name finds it private. */
export function createPrivateFile(path: string): void {
  closeSync(openPrivateFile(path));
}

function openAndChmod(path: string, flags: number, mode: number): void {
  const fd = openSync(path, flags);
  try {
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

/**
 * Bytes an unprivileged process may still write on the file system that holds `dir`; 0 when it
 * cannot be told (the directory was removed under the relay): then nothing new is taken, as on a
 * full disk, rather than the relay dying in a timer.
 */
export function freeBytes(dir: string): number {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return 0;
  }
}
