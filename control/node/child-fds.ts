/* A child's extra fds, as the supervisor (supervised.ts) and the proof (workerd/proof.ts) start workerd with them. */

/** A child's fds 3 and 4, for execa's `stdio`: one of ours to share (as its fd 3), a new pipe, or nothing. */
export type ExtraFds = [fd3: number | "ignore", fd4: "pipe" | "ignore"];

/** ExtraFds as execa's types take them: only fds 3-9, though it passes any open fd (a cell's socket may be above 9). */
export function execaFds(fds: ExtraFds | []) {
  return fds as [fd3: 3 | "ignore", fd4: "pipe" | "ignore"] | [];
}
