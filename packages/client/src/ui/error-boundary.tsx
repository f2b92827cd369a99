// The last line of defence: an error while drawing a screen shows what happened for a moment and
// then draws the screen again from the store, instead of Ink's error screen and a frozen UI.
import { Text } from "ink";
import { Component, Fragment, type ReactNode } from "react";
import { colour } from "./theme.js";

interface Props {
  readonly children: ReactNode;
  /** Told of every error caught (tests assert there is none). */
  readonly onError?: (e: unknown) => void;
  /** How long the error shows before the screen is drawn again. */
  readonly recoverMs?: number;
}

export class ErrorBoundary extends Component<Props, { error: Error | null; generation: number }> {
  override state = { error: null as Error | null, generation: 0 };
  private timer: NodeJS.Timeout | undefined;

  static getDerivedStateFromError(error: unknown) {
    return { error: error instanceof Error ? error : new Error(String(error)) };
  }

  override componentDidCatch(error: unknown): void {
    this.props.onError?.(error);
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => this.setState((s) => ({ error: null, generation: s.generation + 1 })),
      this.props.recoverMs ?? 1500,
    );
  }

  override componentWillUnmount(): void {
    clearTimeout(this.timer);
  }

  override render() {
    if (this.state.error) {
      return (
        <Text color={colour("red")}>
          {`Parley hit an internal error and redraws the screen: ${this.state.error.message}`}
        </Text>
      );
    }
    return <Fragment key={this.state.generation}>{this.props.children}</Fragment>;
  }
}
