// Colours, unless NO_COLOR is set (https://no-color.org): then every colour is dropped.
export const noColor = (env: NodeJS.ProcessEnv = process.env): boolean =>
  env.NO_COLOR !== undefined && env.NO_COLOR !== "";

export type Colour = "cyan" | "green" | "yellow" | "red" | "gray" | "magenta" | "blue";

/** The colour to use, or undefined under NO_COLOR. */
export function colour(c: Colour): Colour | undefined {
  return noColor() ? undefined : c;
}

/** Colours for the authors of a group's messages: not green (mine), red (errors) or gray (notes). */
const AUTHOR_COLOURS: readonly Colour[] = ["cyan", "magenta", "yellow", "blue"];

/** An author's colour: always the same for the same name. */
export function authorColour(name: string): Colour | undefined {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)!) >>> 0;
  return colour(AUTHOR_COLOURS[h % AUTHOR_COLOURS.length]!);
}
