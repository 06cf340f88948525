// One failure → HTTP translation, and each route's shape of it.
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { chatStreamError } from "./chat-stream-error.ts";
import { httpFailure } from "./http-failure.ts";
import { InvalidFieldError } from "./invalid-field-error.ts";
import { openAiError } from "./openai-errors.ts";

const fastify = (statusCode: number, message: string) => Object.assign(new Error(message), { statusCode });

describe("HTTP failures", () => {
  // [fault, status, Connect code]: Connect's own status for a code; a 500 is the coordinator's, whatever it said
  const cases: [unknown, number, Code][] = [
    [new ConnectError("bad", Code.InvalidArgument), 400, Code.InvalidArgument],
    [new ConnectError("too long", Code.FailedPrecondition), 400, Code.FailedPrecondition],
    [new ConnectError("who", Code.Unauthenticated), 401, Code.Unauthenticated],
    [new ConnectError("off", Code.PermissionDenied), 403, Code.PermissionDenied],
    [new ConnectError("no model", Code.NotFound), 404, Code.NotFound],
    [new ConnectError("busy", Code.ResourceExhausted), 429, Code.ResourceExhausted],
    [new ConnectError("gone", Code.Canceled), 499, Code.Canceled],
    [new ConnectError("not yet", Code.Unimplemented), 501, Code.Unimplemented],
    [new ConnectError("no node", Code.Unavailable), 503, Code.Unavailable],
    [new ConnectError("late", Code.DeadlineExceeded), 504, Code.DeadlineExceeded],
    [new ConnectError("secret detail", Code.Internal), 500, Code.Internal],
    [new TypeError("secret detail"), 500, Code.Internal],
    [fastify(400, "Unexpected end of JSON input"), 400, Code.InvalidArgument],
    [fastify(413, "Request body is too large"), 413, Code.ResourceExhausted],
    [
      Object.assign(new ConnectError("the request did not arrive within 600 ms", Code.DeadlineExceeded), {
        statusCode: 408,
      }),
      408,
      Code.DeadlineExceeded,
    ],
  ];

  it.each(cases)("%s → %i", (fault, status, code) => {
    const failure = httpFailure(fault, "r1");
    expect([failure.status, failure.code]).toEqual([status, code]);
    if (status === 500) expect(failure.message).toBe("the coordinator failed to answer (request id r1)");
  });

  it("gives a 429 its wait: the rate limit's own, else 5 s", () => {
    const limited = httpFailure(
      new ConnectError("rate limit", Code.ResourceExhausted, { "retry-after": "86399" }),
      "r1",
    );
    expect([limited.retryAfterSeconds, limited.headers]).toEqual([86399, { "retry-after": "86399" }]);
    expect(httpFailure(new ConnectError("queue full", Code.ResourceExhausted), "r1").headers).toEqual({
      "retry-after": "5",
    });
  });

  it("shapes a refused field for each route: OpenAI's param, the SSE route's field", () => {
    const bad = new InvalidFieldError("max_tokens: must be less than or equal to 131072 [uint32.lte]", "max_tokens");
    expect(openAiError(bad, "r1")).toEqual({
      status: 400,
      body: { error: { message: bad.message, type: "invalid_request_error", param: "max_tokens", code: null } },
      headers: {},
    });
    expect(chatStreamError(bad, "r1")).toEqual({
      status: 400,
      body: { code: "invalid_argument", message: bad.message, field: "max_tokens" },
      headers: {},
    });
    const notJson = fastify(415, "Unsupported Media Type");
    expect(chatStreamError(notJson, "r1").body).toEqual({
      code: "invalid_argument",
      message: "send the body as JSON with the header content-type: application/json",
      field: "content-type",
    });
  });

  it("keeps OpenAI's types and codes, so its SDKs raise their own errors", () => {
    const body = (code: Code) => openAiError(new ConnectError("x", code), "r1").body.error;
    expect(body(Code.ResourceExhausted)).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" });
    expect(body(Code.Unauthenticated)).toMatchObject({ type: "invalid_request_error", code: "invalid_api_key" });
    expect(body(Code.Unavailable)).toMatchObject({ type: "server_error", code: "service_unavailable" });
    expect(body(Code.Internal)).toMatchObject({ type: "server_error", code: null });
    expect(chatStreamError(new ConnectError("x", Code.ResourceExhausted, { "retry-after": "7" }), "r1").body).toEqual({
      code: "resource_exhausted",
      message: "x",
      retry_after_seconds: 7,
    });
  });
});
