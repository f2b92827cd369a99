// The chat screen's picture viewer: what is open, how pictures reach the terminal, and what
// /view may promise (no output for the protocol: no pictures, rather than a viewer that never
// draws, as iTerm2's would without Ink's frames).
import { useStdout } from "ink";
import { useCallback, useMemo, useState } from "react";
import type { GraphicsChoice } from "./graphics-detect.js";
import { type ImageOutput, type ImageSupport, imageOutput } from "./graphics-output.js";
import type { Viewing } from "./image-view.js";

/** Where no ImageSupport is given: no pictures. */
export const NO_IMAGES: ImageSupport = {
  choice: { protocol: null, tmux: false, reason: "this screen was started without picture previews" },
};

export interface ImageViewer {
  /** The picture open, or null. */
  readonly viewing: Viewing | null;
  readonly output: ImageOutput | null;
  /** What /view is told: the choice made, unless it has no output here. */
  readonly graphics: GraphicsChoice;
  open(viewing: Viewing): void;
  close(): void;
  /** The picture could not be sent or shown: closes the viewer and says why. */
  failed(why: string): void;
}

export function useImageViewer(
  images: ImageSupport,
  notice: (text: string, error: boolean) => void,
): ImageViewer {
  const { stdout } = useStdout();
  const [viewing, setViewing] = useState<Viewing | null>(null);
  const output = useMemo(() => imageOutput(images, (s) => stdout.write(s)), [images, stdout]);
  const close = useCallback(() => setViewing(null), []);
  const failed = useCallback(
    (why: string) => {
      setViewing(null);
      notice(`the picture could not be shown: ${why}`, true);
    },
    [notice],
  );
  const graphics = output || images.choice.protocol === null ? images.choice : NO_IMAGES.choice;
  return { viewing, output, graphics, open: setViewing, close, failed };
}
