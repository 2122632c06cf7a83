/**
 * The two undici modules the agent loads instead of the package's index (./agent.ts), which
 * ship no types of their own: they are the index's Client and Dispatcher.prototype.request
 * (test/unit/undici-client.test.ts).
 */
declare module 'undici/lib/dispatcher/client.js' {
  const Client: typeof import('undici').Client;
  export default Client;
}

declare module 'undici/lib/api/api-request.js' {
  const request: (
    this: import('undici').Dispatcher,
    options: import('undici').Dispatcher.RequestOptions,
  ) => Promise<import('undici').Dispatcher.ResponseData>;
  export default request;
}
