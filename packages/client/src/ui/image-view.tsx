// The picture viewer (/view): the whole chat screen, a frame with the file's name and size, the
// picture in a box of cells sized to it, and how to close. The screen is all there is while it
// is open, so its frame only changes on a resize (iTerm2's picture is drawn again after each
// frame; see graphics-output.ts). The picture is sent when the viewer opens and taken out of the
// terminal when it closes.
import { Box, Text } from "ink";
import { useEffect, useState } from "react";
import { humanSize } from "../output.js";
import { displayText } from "../text.js";
import { kittyPlaceholders, MAX_PLACEHOLDER_SPAN } from "./graphics-escapes.js";
import type { CellBox, ImageOutput } from "./graphics-output.js";
import type { ImageInfo, PreviewImage } from "./image-file.js";
import { colour } from "./theme.js";

/** A picture open in the viewer. */
export interface Viewing {
  /** Its id in the terminal (kitty's image id). */
  readonly id: number;
  /** As the sender named it. */
  readonly name: string;
  readonly size: number;
  /** Where it is saved. */
  readonly path: string;
  readonly image: PreviewImage;
}

/**
 * A cell's size in pixels, for a picture's natural size in cells: a common font's, since the
 * terminal's is not asked (its answer would arrive as keys). The terminal fits the picture into
 * the box keeping its aspect ratio, so a wrong guess only leaves a margin.
 */
const CELL = { width: 8, height: 16 };

/**
 * Where the picture goes in a viewer `width` x `height`: inside the border and its padding,
 * below the title and above the last line, at its natural size or shrunk to fit, centred.
 */
export function viewerBox(width: number, height: number, image: ImageInfo): CellBox {
  // Border and padding: two columns each side; border, title, last line and border: four rows.
  const room = { cols: Math.max(1, width - 4), rows: Math.max(1, height - 4) };
  const natural = {
    cols: Math.ceil(image.width / CELL.width),
    rows: Math.ceil(image.height / CELL.height),
  };
  const scale = Math.min(1, room.cols / natural.cols, room.rows / natural.rows);
  const cols = Math.min(MAX_PLACEHOLDER_SPAN, Math.max(1, Math.floor(natural.cols * scale)));
  const rows = Math.min(MAX_PLACEHOLDER_SPAN, Math.max(1, Math.floor(natural.rows * scale)));
  return {
    top: 2 + Math.floor((room.rows - rows) / 2),
    left: 2 + Math.floor((room.cols - cols) / 2),
    cols,
    rows,
  };
}

export function ImageView(props: {
  readonly viewing: Viewing;
  readonly output: ImageOutput;
  readonly width: number;
  readonly height: number;
  /** The picture could not be sent or shown: the viewer closes with this. */
  readonly onFailed: (why: string) => void;
}) {
  const { viewing, output, width, height, onFailed } = props;
  const box = viewerBox(width, height, viewing.image);
  const [loaded, setLoaded] = useState(false);
  const [shown, setShown] = useState(false);

  // Sent once per picture; taken out of the terminal when the viewer closes (or shows another).
  useEffect(() => {
    let open = true;
    setLoaded(false);
    setShown(false);
    output.load(viewing.id, viewing.image).then(
      () => open && setLoaded(true),
      (e: unknown) => open && onFailed(e instanceof Error ? e.message : String(e)),
    );
    return () => {
      open = false;
      output.remove(viewing.id);
    };
  }, [output, viewing, onFailed]);

  // Placed (again) whenever the box changes; the placeholders are drawn once it is.
  useEffect(() => {
    if (!loaded) return;
    let open = true;
    const at = { top: box.top, left: box.left, cols: box.cols, rows: box.rows };
    output.show(viewing.id, at, height).then(
      () => open && setShown(true),
      (e: unknown) => open && onFailed(e instanceof Error ? e.message : String(e)),
    );
    return () => {
      open = false;
    };
  }, [loaded, output, viewing.id, box.top, box.left, box.cols, box.rows, height, onFailed]);

  const { image } = viewing;
  const title = `${displayText(viewing.name)} · ${humanSize(viewing.size)} · ${image.width}x${image.height} ${image.type.toUpperCase()}`;
  const cells =
    output.protocol === "kitty" && shown ? kittyPlaceholders(viewing.id, box.cols, box.rows) : null;
  return (
    <Box
      flexDirection="column"
      borderStyle="round"
      paddingX={1}
      width={width}
      height={height}
      overflow="hidden"
    >
      <Text bold wrap="truncate-end">
        {title}
      </Text>
      <Box flexDirection="column" height={Math.max(1, height - 4)}>
        <Box height={box.top - 2} />
        {cells ? (
          cells.map((line, row) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: the rows of the picture are positions
            <Text key={row}>
              {" ".repeat(box.left - 2)}
              {line}
            </Text>
          ))
        ) : shown ? null : (
          <Text color={colour("gray")}>{" ".repeat(box.left - 2)}sending the picture to the terminal…</Text>
        )}
      </Box>
      <Text color={colour("gray")} wrap="truncate-end">
        Esc closes · saved at {displayText(viewing.path)}
      </Text>
    </Box>
  );
}
