import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MEDIA_TYPES } from '@hearth/oci';

/** What the stand-in answers for one path: bytes, or a handler that may misbehave at will. */
export type Answer = Buffer | ((req: IncomingMessage, res: ServerResponse) => void);

/**
 * A stand-in for a registry that lies, which the real one cannot be made to be (it checks
 * digests and sizes on push). It speaks just enough of the distribution API on 127.0.0.1:
 * `GET /v2/`, manifests and blobs by `<repo>/<reference>`, and records every request.
 */
export class MisbehavingRegistry {
  readonly manifests = new Map<string, Answer>();
  readonly blobs = new Map<string, Answer>();
  readonly requests: string[] = [];
  readonly #server: Server;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<MisbehavingRegistry> {
    let self: MisbehavingRegistry | undefined;
    const server = createServer((req, res) => self!.#handle(req, res));
    self = new MisbehavingRegistry(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return self;
  }

  /** host:port, as RegistryClient and image references name it. */
  get registry(): string {
    return `127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push(`${req.method} ${req.url}`);
    const url = req.url ?? '';
    if (url === '/v2/') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url);
    const answer = m ? (m[2] === 'manifests' ? this.manifests : this.blobs).get(`${m[1]}/${decodeURIComponent(m[3]!)}`) : undefined;
    if (!answer) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ errors: [{ code: 'NOT_FOUND', message: 'not here' }] }));
    }
    if (typeof answer === 'function') return answer(req, res);
    res.writeHead(200, {
      'content-type': m![2] === 'manifests' ? MEDIA_TYPES.ociManifest : 'application/octet-stream',
      'content-length': answer.length,
    });
    res.end(req.method === 'HEAD' ? undefined : answer);
  }
}
