/**
 * A DB's metrics served to Prometheus: a `PrometheusMeter` in a prom-client registry, the DB
 * reporting its counters and histograms through it, `meter.track(db)` for the values read from
 * `db.stats()` at each scrape, and `GET /metrics` on 127.0.0.1.
 *
 * It writes and reads some data (with flushes and a compaction), prints the URL, then keeps
 * writing a little every 200 ms so that the numbers move, until Ctrl-C. With `--once` it scrapes
 * itself once over HTTP, prints the answer and exits (a check that runs to completion).
 *
 * Run: npx tsx examples/metrics-server.ts [--port N] [--once] [dir]
 *   --port N  the port to listen on (default 0: any free port)
 *   dir       a new or empty directory, or one this example used before, to keep the data in;
 *             else a temp dir, removed at the end
 *
 * Prometheus scrape config: `static_configs: [{ targets: ['127.0.0.1:<port>'] }]`.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Registry } from 'prom-client';
import { DB } from '../src/index.js';
import { PrometheusMeter } from '../src/prometheus/index.js';

function parseArgs(argv: string[]): { port: number; once: boolean; dir: string | undefined } {
  let port = 0;
  let once = false;
  let dir: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--once') once = true;
    else if (a === '--port') {
      port = Number(argv[++i]);
      if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`--port takes a port number, not ${argv[i]}`);
    } else if (a.startsWith('-')) usage(`unknown option ${a}`);
    else if (dir === undefined) dir = a;
    else usage(`one directory at most (got ${dir} and ${a})`);
  }
  return { port, once, dir };
}

function usage(problem: string): never {
  console.error(`${problem}\nusage: npx tsx examples/metrics-server.ts [--port N] [--once] [dir]`);
  process.exit(2);
}

const key = (i: number): string => `user:${String(i).padStart(6, '0')}`;

/** Some writes, reads, flushes and a compaction, so that every metric has something to say. */
async function seed(db: DB<string, unknown>): Promise<void> {
  for (let b = 0; b < 100; b++) {
    await db.batch(
      Array.from({ length: 100 }, (_, j) => ({
        type: 'put' as const,
        key: key(b * 100 + j),
        value: { n: b * 100 + j, pad: 'x'.repeat(64) },
      })),
    );
  }
  await db.flush();
  for (let i = 0; i < 2000; i++) await db.get(key((i * 7919) % 10_000)); // table reads: block cache misses, then hits
  for (let i = 0; i < 1000; i++) await db.put(key(i * 2), { n: i, overwritten: true }); // single writes: no group commit
  await db.compact();
  for (let i = 0; i < 100; i++) await db.put(key(i), { n: i, after: 'compaction' }); // some in the memtable
}

const { port, once, dir: given } = parseArgs(process.argv.slice(2));
if (given !== undefined && fs.existsSync(given) && fs.readdirSync(given).length > 0 && !fs.existsSync(path.join(given, 'CURRENT'))) {
  console.error(`${given} is neither empty nor a sediment database: pass a new or empty directory`);
  process.exit(2);
}
const dir = given ?? fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-metrics-'));

const registry = new Registry(); // or prom-client's global `register`, the meter's default
const meter = new PrometheusMeter({ registry }); // metrics named sediment_*; `labels: { db: 'users' }` for several DBs
const db = await DB.open<string, unknown>(dir, { meter, memtableSize: 512 * 1024, fsync: { batchMs: 5 } });
const untrack = meter.track(db);

const server = http.createServer((req, res) => {
  if (req.method !== 'GET' || req.url !== '/metrics') {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('try GET /metrics\n');
    return;
  }
  registry.metrics().then(
    (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
    (err: unknown) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${String(err)}\n`),
  );
});

let writer: NodeJS.Timeout | undefined;
let stopping: Promise<void> | undefined;
function stop(): Promise<void> {
  stopping ??= (async () => {
    clearInterval(writer);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    untrack();
    await db.close();
    if (given === undefined) fs.rmSync(dir, { recursive: true, force: true });
  })();
  return stopping;
}

try {
  await seed(db);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
} catch (err) {
  await stop();
  throw err;
}
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
console.log(`metrics at ${url}`);

if (once) {
  let ok = false;
  try {
    const res = await fetch(url);
    const text = await res.text();
    console.log(`GET /metrics: ${res.status} ${res.headers.get('content-type')}\n`);
    console.log(text);
    ok = res.status === 200 && text.includes('sediment_wal_records_total');
  } finally {
    await stop();
  }
  process.exitCode = ok ? 0 : 1;
} else {
  console.log('writing a little every 200 ms; Ctrl-C to stop');
  let n = 0;
  let busy = false;
  writer = setInterval(() => {
    if (busy) return; // one round at a time
    busy = true;
    const round = n++;
    db.batch(Array.from({ length: 50 }, (_, j) => ({ type: 'put' as const, key: key((round * 50 + j) % 20_000), value: { round } })))
      .then(() => db.get(key(round % 10_000)))
      .catch((err: unknown) => console.error('write failed:', err))
      .finally(() => (busy = false));
  }, 200);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.log(`\n${signal}: closing`);
      void stop().then(() => process.exit(0));
    });
  }
}
