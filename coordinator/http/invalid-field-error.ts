// A request body that an HTTP route refuses, naming the field at fault: OpenAI's errors call it `param`, the SSE
// route's `field`.
export class InvalidFieldError extends Error {
  constructor(
    message: string,
    /** The path of the offending value (`messages[0].content`, `content-type`); null for the body as a whole. */
    readonly field: string | null,
  ) {
    super(message);
    this.name = "InvalidFieldError";
  }
}
