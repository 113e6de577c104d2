/**
 * sediment in the Level ecosystem: `sediment/level` is an abstract-level 3 database, so code
 * written for Level works on it unchanged. Here:
 *
 * - an existing app's data lives in classic-level (LevelDB), with sublevels and JSON values;
 * - `copyDatabase` (generic Level code: it takes any two abstract-level databases) migrates it,
 *   byte for byte, into a SedimentLevel, sublevels included, in chained batches;
 * - the same generic `countEntries` reads both sides, and each sublevel reads back the same;
 * - on sediment, abstract-level's own machinery keeps working: a `prewrite` hook maintains a
 *   secondary index in another sublevel, atomically with each write (one sediment batch, one
 *   WAL batch); explicit snapshots; `write` events; range queries on sublevels;
 * - level-read-stream, a Level-ecosystem module used as it is, streams a range of orders out of
 *   sediment as a Node.js readable stream, piped through a transform into a JSON report;
 * - reopened later (`createIfMissing: false`), everything is there.
 *
 * Run: npx tsx examples/level-ecosystem.ts [dir]   (a fresh temp dir, removed at the end, unless
 * a new or empty dir to keep the data in is given)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ClassicLevel } from 'classic-level';
import { EntryStream } from 'level-read-stream';
import { SedimentLevel } from '../src/level/index.js';

interface Order {
  customer: string;
  total: number;
  items: string[];
}

interface Customer {
  name: string;
}

const raw = { keyEncoding: 'buffer', valueEncoding: 'buffer' } as const;

/**
 * What the generic code below uses of a database: every abstract-level database and sublevel has
 * it (classic-level, memory-level, sediment...).
 */
interface Level {
  open(): Promise<void>;
  iterator(options: typeof raw): { nextv(size: number): Promise<[unknown, unknown][]>; close(): Promise<void> };
  batch(): { put(key: unknown, value: unknown, options: typeof raw): unknown; write(): Promise<void> };
  keys(): AsyncIterable<unknown>;
}

/** Copies every entry of `from` into `to` as raw bytes (sublevel prefixes included), 1,000 at a time. */
async function copyDatabase(from: Level, to: Level): Promise<number> {
  let copied = 0;
  await to.open(); // a chained batch needs an open database (other operations wait for the open)
  const it = from.iterator(raw);
  try {
    for (let entries = await it.nextv(1000); entries.length > 0; entries = await it.nextv(1000)) {
      const batch = to.batch();
      for (const [key, value] of entries) batch.put(key, value, raw);
      await batch.write();
      copied += entries.length;
    }
  } finally {
    await it.close();
  }
  return copied;
}

/** Entries in a database (or a sublevel), by iterating its keys. */
async function countEntries(db: Level): Promise<number> {
  let n = 0;
  for await (const _ of db.keys()) n++;
  return n;
}

async function main(dir: string): Promise<void> {
  console.log(`sediment through the Level API, data in ${dir}\n`);

  // 1. The existing app, on classic-level (LevelDB).
  const leveldb = new ClassicLevel(path.join(dir, 'leveldb'));
  const old = {
    orders: leveldb.sublevel<string, Order>('orders', { valueEncoding: 'json' }),
    customers: leveldb.sublevel<string, Customer>('customers', { valueEncoding: 'json' }),
  };
  await old.customers.batch([
    { type: 'put', key: 'c1', value: { name: 'Ada' } },
    { type: 'put', key: 'c2', value: { name: 'Grace' } },
  ]);
  const orders = old.orders.batch();
  for (let i = 1; i <= 2500; i++) {
    orders.put(`o${String(i).padStart(5, '0')}`, { customer: i % 3 === 0 ? 'c2' : 'c1', total: i * 10, items: [`sku-${i % 7}`] });
  }
  await orders.write();
  console.log(`classic-level: ${await countEntries(old.orders)} orders, ${await countEntries(old.customers)} customers`);

  // 2. Migrate into sediment with generic Level code.
  const location = path.join(dir, 'sediment');
  let db = new SedimentLevel(location, { fsync: { batchMs: 5 } });
  const copied = await copyDatabase(leveldb, db);
  await leveldb.close();
  // The same sublevels, by name, on sediment.
  const now = {
    orders: db.sublevel<string, Order>('orders', { valueEncoding: 'json' }),
    customers: db.sublevel<string, Customer>('customers', { valueEncoding: 'json' }),
  };
  console.log(
    `copied ${copied} entries; sediment: ${await countEntries(now.orders)} orders, ${await countEntries(now.customers)} customers`,
  );
  console.log(`order o00003 on sediment: ${JSON.stringify(await now.orders.get('o00003'))}`);

  // 3. A secondary index kept by a prewrite hook: each order put also writes its index entry,
  //    in the same atomic batch.
  const byCustomer = db.sublevel('by-customer');
  now.orders.hooks.prewrite.add((op, batch) => {
    if (op.type === 'put') {
      const order = op.value as Order;
      // A sibling sublevel (as in abstract-level's own example); its typings only know descendants.
      batch.add({ type: 'put', key: `${order.customer}!${op.key}`, value: '', sublevel: byCustomer as never });
    }
  });
  let writes = 0;
  db.on('write', (ops: unknown[]) => (writes += ops.length));
  await now.orders.put('o09001', { customer: 'c2', total: 99, items: ['sku-1'] });
  await now.orders.put('o09002', { customer: 'c2', total: 42, items: ['sku-2'] });
  console.log(`orders of c2 via the index: ${JSON.stringify(await byCustomer.keys({ gte: 'c2!', lt: 'c2"' }).all())}`);
  console.log(`write events on the root: ${writes} operations (each order and its index entry)`);

  // 4. An explicit snapshot: a consistent view while writes go on.
  const snapshot = db.snapshot();
  await now.orders.del('o00001');
  await now.orders.put('o09003', { customer: 'c1', total: 7, items: [] });
  const before = await now.orders.keys({ snapshot, limit: 2 }).all();
  const after = await now.orders.keys({ limit: 2 }).all();
  await snapshot.close();
  console.log(`first orders in the snapshot: ${before.join(', ')}; now: ${after.join(', ')}`);

  // 5. level-read-stream, unchanged: a readable stream of a range of orders, piped into a report.
  const lines: string[] = [];
  await pipeline(
    new EntryStream<string, Order, typeof now.orders>(now.orders, { gte: 'o09000', lt: 'o09999' }),
    new Transform({
      objectMode: true,
      transform(entry: { key: string; value: Order }, _enc, done) {
        done(null, `${entry.key} ${entry.value.customer} ${entry.value.total}`);
      },
    }),
    async (source: AsyncIterable<string>) => {
      for await (const line of source) lines.push(line);
    },
  );
  console.log(`streamed with level-read-stream: ${lines.join('; ')}`);

  // 6. Reopen: only an existing database (createIfMissing: false).
  await db.close();
  db = new SedimentLevel(location, { createIfMissing: false });
  const reopened = db.sublevel<string, Order>('orders', { valueEncoding: 'json' });
  const big = await reopened.values({ reverse: true, limit: 1 }).all();
  console.log(
    `\nreopened: ${await countEntries(reopened)} orders, ${await countEntries(db.sublevel('by-customer'))} index entries; last order ${JSON.stringify(big[0])}`,
  );
  await db.close();
}

const keep = process.argv[2] !== undefined;
if (keep && fs.existsSync(process.argv[2]!) && fs.readdirSync(process.argv[2]!).length > 0) {
  console.error(`${process.argv[2]} is not empty: pass a new or empty directory (the demo starts from empty databases)`);
  process.exit(2);
}
const dir = process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-level-'));
try {
  await main(dir);
} finally {
  if (!keep) fs.rmSync(dir, { recursive: true, force: true });
}
