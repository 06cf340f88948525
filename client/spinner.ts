// A one-line spinner on stderr while a chat waits (queue position, then the answering node); silent off a TTY.

const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const FRAME_MS = 80;

export class Spinner {
  private text = "";
  private frame = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly output: NodeJS.WriteStream,
    private readonly enabled: boolean,
  ) {}

  /** Shows (or changes) the line; starts the animation on first use. */
  update(text: string): void {
    if (!this.enabled) return;
    this.text = text;
    if (!this.timer) {
      // unref: a spinner must never be what keeps the process alive
      this.timer = setInterval(() => this.draw(), FRAME_MS).unref();
    }
    this.draw();
  }

  /** Clears the line, so the answer starts at column 0. */
  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.output.write("\r\x1b[2K");
  }

  private draw(): void {
    this.frame = (this.frame + 1) % frames.length;
    this.output.write(`\r\x1b[2K${frames[this.frame]} ${this.text}`);
  }
}
