// Client control texts. A text payload whose text starts with NUL is for the client, never shown:
// `NUL "parley:intro:" JSON`, where JSON is {"v":1,"name":"..."}, announces the sender's display
// name. An accepter sends one inside its Accept, and the inviter answers with its own once the
// session is open. Users cannot send texts starting with NUL (the client refuses them).

const PREFIX = "\u0000parley:intro:";

export interface Intro {
  readonly name: string;
}

export const isControlText = (text: string): boolean => text.startsWith("\u0000");

export function encodeIntro(intro: Intro): string {
  return PREFIX + JSON.stringify({ v: 1, name: intro.name });
}

/** The announced name, or null for any other or malformed control text. */
export function decodeIntro(text: string): Intro | null {
  if (!text.startsWith(PREFIX)) return null;
  try {
    const v = JSON.parse(text.slice(PREFIX.length)) as { v?: unknown; name?: unknown };
    return v.v === 1 && typeof v.name === "string" ? { name: v.name } : null;
  } catch {
    return null;
  }
}
