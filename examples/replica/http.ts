/**
 * The tiny HTTP interface of both processes (127.0.0.1 only):
 *
 * - `GET /k/<key>`: the value (200, text) or 404;
 * - `GET /dump`: every entry, `[[key, value], ...]` in key order (JSON);
 * - `GET /status`: the process's replication state (JSON);
 * - leader only: `PUT /k/<key>` (body: the value; `?ttlMs=N` for a TTL), `DELETE /k/<key>`,
 *   `POST /batch` (body: `[{ "type": "put", "key": "a", "value": "1" }, { "type": "del", "key": "b" }]`),
 *   each answered 204 once the write resolved (acknowledged), 400 for bad input.
 *
 * Keys travel percent-encoded in the path.
 *
 * @module
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a route answers. */
export interface Reply {
  status: number;
  body?: string;
  json?: unknown;
}

/** A route: the request's method, the path after its first segment, and its body. */
export type Handler = (method: string, path: string, query: URLSearchParams, body: string) => Promise<Reply>;

/** Listens on 127.0.0.1:`port` (0: any free port); resolves the port. */
export async function serve(port: number, handle: Handler): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      handle(req.method ?? 'GET', url.pathname, url.searchParams, Buffer.concat(chunks).toString('utf8'))
        .catch((err: unknown): Reply => {
          const status =
            err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError || err instanceof URIError ? 400 : 500;
          return { status, body: `${(err as Error).name}: ${(err as Error).message}\n` };
        })
        .then((r) => {
          if (r.json !== undefined) {
            res.writeHead(r.status, { 'content-type': 'application/json' }).end(JSON.stringify(r.json));
          } else {
            res.writeHead(r.status, { 'content-type': 'text/plain; charset=utf-8' }).end(r.body ?? '');
          }
        });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}

/** The key of a `/k/<key>` path, or undefined for any other path. */
export function keyOf(path: string): string | undefined {
  return path.startsWith('/k/') && path.length > 3 ? decodeURIComponent(path.slice(3)) : undefined;
}
