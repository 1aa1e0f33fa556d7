// HTTP/2 flow-control windows for every gRPC server in this process. Node's
// default is 64 KiB per stream and per connection, and grpc-js 1.14 offers a
// larger one only to clients ('grpc-node.flow_control_window'). With 64 KiB,
// a 1 MiB value crosses a peer stream in 16 window round trips, each waiting
// for the receiver's event loop; a heartbeat queued behind it was late by a
// second, and the group held an election every second under a 1 MiB-value
// load. grpc-js creates its HTTP/2 server with `http2.createServer`, so that
// is where the settings go. The cost is memory a receiver may have to hold for
// a sender that outruns it: the window, per stream and per connection.
import http2 from 'node:http2';

/** Per stream, either way: a few of the largest messages (8 MiB on the wire). */
export const STREAM_WINDOW_BYTES = 8 * 1024 * 1024;
/** Per connection. */
export const CONNECTION_WINDOW_BYTES = 16 * 1024 * 1024;

let widened = false;

/** Makes every HTTP/2 server created from now on advertise the windows above. Idempotent. */
export function widenServerWindows(): void {
  if (widened) return;
  widened = true;
  const original = http2.createServer;
  const create = (options: http2.ServerOptions = {}, listener?: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void) => {
    const server = original({ ...options, settings: { ...options.settings, initialWindowSize: STREAM_WINDOW_BYTES } }, listener);
    server.on('session', (session) => session.setLocalWindowSize(CONNECTION_WINDOW_BYTES));
    return server;
  };
  http2.createServer = create as typeof http2.createServer;
}
