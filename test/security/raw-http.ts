import net from 'node:net';

/** What a raw connection saw: the bytes the server sent, and whether and when it closed. */
export interface RawOutcome {
  response: string;
  /** false when the server still held the connection at the deadline (the client then gave up). */
  closedByServer: boolean;
  ms: number;
}

/**
 * A hand-driven HTTP/1.1 client on a raw socket, for what fetch never does: headers sent a
 * byte at a time, a body that never ends, garbage request lines. `drip` is called with a
 * write function until the server closes the connection or `deadlineMs` passes.
 */
export function rawRequest(
  port: number,
  opts: { first?: string; drip?: { every: number; bytes: string }; deadlineMs: number },
): Promise<RawOutcome> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    let response = '';
    let timer: NodeJS.Timeout | undefined;
    let dripAt = 0;
    const finish = (closedByServer: boolean) => {
      clearInterval(timer);
      clearTimeout(deadline);
      socket.destroy();
      resolve({ response, closedByServer, ms: Date.now() - started });
    };
    const deadline = setTimeout(() => finish(false), opts.deadlineMs);
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (response += d));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A reset while dripping is the server closing on us too.
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return finish(true);
      clearTimeout(deadline);
      reject(err);
    });
    socket.on('close', () => finish(true));
    socket.on('connect', () => {
      if (opts.first) socket.write(opts.first);
      const drip = opts.drip;
      if (drip) {
        timer = setInterval(() => {
          if (socket.destroyed || !socket.writable) return;
          socket.write(drip.bytes[dripAt % drip.bytes.length]!);
          dripAt++;
        }, drip.every);
      }
    });
  });
}
