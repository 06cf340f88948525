// Preloaded into Portkey's gateway by the peers benchmark (`node --import ./bench/peers-portkey-fetch.ts
// node_modules/@portkey-ai/gateway/build/start-server.js`). Portkey 1.15.2 appends headers to the Response that
// fetch gave it; under Node 24 (undici) that Response's headers are immutable, so every streamed call it proxies
// fails ("Something went wrong"; its log: `TypeError: immutable` at appendHeader). Re-wrapping every Response in a
// fresh one (same body stream, status and headers) makes them mutable again, at the cost of one more Response
// object per upstream call. Erasable type annotations only: Node strips them itself, no loader needed.
const originalFetch = globalThis.fetch;

globalThis.fetch = async (
  input: Parameters<typeof fetch>[0],
  init?: Parameters<typeof fetch>[1],
): Promise<Response> => {
  const response = await originalFetch(input, init);
  return new Response(response.body, response);
};
