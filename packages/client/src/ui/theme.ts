// Colours, unless NO_COLOR is set (https://no-color.org): then every colour is dropped.
export const noColor = (env: NodeJS.ProcessEnv = process.env): boolean =>
  env.NO_COLOR !== undefined && env.NO_COLOR !== "";

export type Colour = "cyan" | "green" | "yellow" | "red" | "gray" | "magenta";

/** The colour to use, or undefined under NO_COLOR. */
export function colour(c: Colour): Colour | undefined {
  return noColor() ? undefined : c;
}
