/**
 * Event sourcing on the raw WAL: bank accounts whose only source of truth is an append-only log of
 * domain events.
 *
 * - Commands (open, deposit, withdraw, transfer) are checked against the current state and, if
 *   valid, become events: records whose key is the account (the event stream) and whose value is
 *   the event, msgpack-encoded.
 * - A transfer is two events (a withdrawal and a deposit) appended with `appendBatch`: after any
 *   crash both are in the log or neither is, so money is never created or destroyed.
 * - State is a fold over the events: `rebuild` replays the log with `wal.readFrom`.
 * - A snapshot stores the state and the log position it covers (`wal.currentPosition()`); a restart
 *   loads it and replays only the events after that position.
 * - Once a snapshot is safely on disk, `wal.deleteSegmentsBefore(position)` drops the segments
 *   before it: the log stays small, and the snapshot plus the tail is the whole truth.
 *
 * Run: npx tsx examples/event-sourcing.ts [dir]   (a fresh temp dir, removed at the end, unless a new
 * or empty dir to keep the data in is given)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Packr } from 'msgpackr';
import { comparePositions, Record, Wal, type Position } from '../src/index.js';

type Event =
  | { type: 'opened'; owner: string; at: number }
  | { type: 'deposited'; amount: number; at: number; ref?: string }
  | { type: 'withdrawn'; amount: number; at: number; ref?: string };

interface Account {
  owner: string;
  balance: number;
  events: number;
}

type State = Map<string, Account>;

const packr = new Packr({ useRecords: false });

/** The fold: one event applied to the state. Pure and deterministic, so replay rebuilds exactly. */
function apply(state: State, account: string, e: Event): void {
  if (e.type === 'opened') {
    state.set(account, { owner: e.owner, balance: 0, events: 1 });
    return;
  }
  const a = state.get(account);
  if (!a) throw new Error(`event for unknown account ${account}`);
  a.balance += e.type === 'deposited' ? e.amount : -e.amount;
  a.events++;
}

/** Replays the log from `from` into `state`; returns how many events it applied. */
async function replay(wal: Wal, state: State, from: Position): Promise<number> {
  let n = 0;
  for await (const { record } of wal.readFrom(from)) {
    apply(state, Buffer.from(record.key).toString('utf8'), packr.unpack(record.value) as Event);
    n++;
  }
  return n;
}

/** The write side: validates commands against the state and appends their events. */
class Bank {
  readonly state: State = new Map();
  constructor(readonly wal: Wal) {}

  async #emit(events: [string, Event][]): Promise<void> {
    const records = events.map(([account, e]) => Record.put(account, packr.pack(e)));
    if (records.length === 1) await this.wal.append(records[0]!);
    else await this.wal.appendBatch(records); // all or nothing, even across a crash
    for (const [account, e] of events) apply(this.state, account, e); // only once it is in the log
  }

  open(account: string, owner: string): Promise<void> {
    if (this.state.has(account)) throw new Error(`account ${account} exists`);
    return this.#emit([[account, { type: 'opened', owner, at: Date.now() }]]);
  }

  deposit(account: string, amount: number): Promise<void> {
    this.#mustExist(account);
    return this.#emit([[account, { type: 'deposited', amount, at: Date.now() }]]);
  }

  withdraw(account: string, amount: number): Promise<void> {
    if (this.#mustExist(account).balance < amount) return Promise.reject(new Error(`insufficient funds in ${account}`));
    return this.#emit([[account, { type: 'withdrawn', amount, at: Date.now() }]]);
  }

  transfer(from: string, to: string, amount: number, ref: string): Promise<void> {
    if (this.#mustExist(from).balance < amount) return Promise.reject(new Error(`insufficient funds in ${from}`));
    this.#mustExist(to);
    const at = Date.now();
    return this.#emit([
      [from, { type: 'withdrawn', amount, at, ref }],
      [to, { type: 'deposited', amount, at, ref }],
    ]);
  }

  #mustExist(account: string): Account {
    const a = this.state.get(account);
    if (!a) throw new Error(`no account ${account}`);
    return a;
  }
}

interface Snapshot {
  /** The log position the state covers: replay resumes here. */
  position: Position;
  accounts: [string, Account][];
}

/** Writes the snapshot durably: temp file, fsync, rename, fsync of the directory. */
function saveSnapshot(file: string, snap: Snapshot): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  fs.writeSync(fd, JSON.stringify(snap));
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  const dirFd = fs.openSync(path.dirname(file), 'r');
  fs.fsyncSync(dirFd);
  fs.closeSync(dirFd);
}

function loadSnapshot(file: string): Snapshot | undefined {
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as Snapshot) : undefined;
}

const fmt = (state: State): string =>
  [...state]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([id, a]) => `${id} (${a.owner}) ${a.balance}`)
    .join(', ');
const total = (state: State): number => [...state.values()].reduce((s, a) => s + a.balance, 0);
const same = (a: State, b: State): boolean => fmt(a) === fmt(b) && JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());

/** A deterministic pseudo-random source, so every run tells the same story. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A day at the bank: `n` random commands, some refused by validation. */
async function business(bank: Bank, rand: () => number, n: number): Promise<{ ok: number; refused: number }> {
  const ids = [...bank.state.keys()];
  let ok = 0;
  let refused = 0;
  for (let i = 0; i < n; i++) {
    const a = ids[Math.floor(rand() * ids.length)]!;
    const b = ids[Math.floor(rand() * ids.length)]!;
    const amount = 10 + Math.floor(rand() * 200);
    const r = rand();
    try {
      if (r < 0.35) await bank.deposit(a, amount);
      else if (r < 0.6) await bank.withdraw(a, amount);
      else if (a !== b) await bank.transfer(a, b, amount, `tx-${i}`);
      else continue;
      ok++;
    } catch {
      refused++; // insufficient funds: no event
    }
  }
  return { ok, refused };
}

async function main(root: string): Promise<void> {
  const logDir = path.join(root, 'events');
  const snapFile = path.join(root, 'snapshot.json');
  const walOptions = { dir: logDir, maxSegmentSize: 4096, fsync: { batchMs: 5 } } as const;
  const rand = prng(42);
  console.log(`sediment event sourcing on the raw WAL, data in ${root}\n`);

  // 1. Day one: open accounts, do business.
  let { wal } = await Wal.open(walOptions);
  let bank = new Bank(wal);
  for (const [id, owner] of [
    ['acct:alice', 'Alice'],
    ['acct:bob', 'Bob'],
    ['acct:carol', 'Carol'],
    ['acct:dave', 'Dave'],
  ] as const) {
    await bank.open(id, owner);
    await bank.deposit(id, 1000);
  }
  let records = wal.stats().records;
  let day = await business(bank, rand, 150);
  console.log(
    `day 1: ${day.ok} commands accepted (${wal.stats().records - records} events: a transfer is two), ${day.refused} refused (insufficient funds)`,
  );
  console.log(`  balances: ${fmt(bank.state)}; total ${total(bank.state)} (4 x 1000 deposited, plus deposits, minus withdrawals)`);
  await bank.transfer('acct:alice', 'acct:bob', 5, 'coffee');
  console.log(`  alice -> bob 5 (one appendBatch: the withdrawal and the deposit, atomically)`);
  console.log(`  log: ${wal.stats().records} records in ${wal.stats().segments} segments`);
  await wal.close();

  // 2. Restart: the state is nothing but a fold over the log.
  ({ wal } = await Wal.open(walOptions));
  let state: State = new Map();
  let t0 = performance.now();
  let n = await replay(wal, state, { segmentId: 0, offset: 0 });
  console.log(`\nrestart: replayed ${n} events from the start in ${(performance.now() - t0).toFixed(1)} ms`);
  console.log(`  rebuilt state ${same(state, bank.state) ? 'matches' : 'DIFFERS FROM'} the state before the restart`);

  // 3. Snapshot: the state plus the position it covers, then more business.
  bank = new Bank(wal);
  for (const [id, a] of state) bank.state.set(id, { ...a });
  const snap: Snapshot = { position: wal.currentPosition(), accounts: [...bank.state] };
  saveSnapshot(snapFile, snap);
  console.log(`\nsnapshot at ${JSON.stringify(snap.position)} saved (temp file, fsync, rename, directory fsync)`);
  records = wal.stats().records;
  day = await business(bank, rand, 60);
  console.log(`day 2: ${day.ok} commands accepted (${wal.stats().records - records} events); balances: ${fmt(bank.state)}`);
  await wal.close();

  // 4. Restart from the snapshot: load it, replay only the tail.
  ({ wal } = await Wal.open(walOptions));
  const loaded = loadSnapshot(snapFile)!;
  state = new Map(loaded.accounts.map(([id, a]) => [id, { ...a }]));
  t0 = performance.now();
  n = await replay(wal, state, loaded.position);
  console.log(
    `\nrestart from the snapshot: replayed ${n} events after ${JSON.stringify(loaded.position)} in ${(performance.now() - t0).toFixed(1)} ms`,
  );
  const full: State = new Map();
  const all = await replay(wal, full, { segmentId: 0, offset: 0 });
  console.log(
    `  snapshot + tail ${same(state, full) ? 'equals' : 'DIFFERS FROM'} a full replay of ${all} events; ${same(state, bank.state) ? 'and' : 'but NOT'} the live state`,
  );

  // 5. Compact the log: the snapshot covers everything before its position.
  const before = wal.stats().segments;
  const deleted = await wal.deleteSegmentsBefore(loaded.position);
  console.log(`\ndeleteSegmentsBefore(snapshot position): ${deleted} of ${before} segments deleted, ${wal.stats().segments} kept`);
  const tail: State = new Map(loaded.accounts.map(([id, a]) => [id, { ...a }]));
  n = await replay(wal, tail, loaded.position);
  console.log(`  snapshot + tail still ${same(tail, bank.state) ? 'rebuilds the live state' : 'DIFFERS'} (${n} events)`);
  let fromStart = 0;
  for await (const { position } of wal.readFrom({ segmentId: 0, offset: 0 })) {
    if (comparePositions(position, loaded.position) < 0) fromStart++;
  }
  console.log(`  a replay from the start now begins at the oldest kept segment: ${fromStart} event(s) before the snapshot position remain`);
  console.log(
    `  (the segment holding the snapshot position is kept whole, so it may still hold a few older events: replay from the snapshot skips them)`,
  );

  // 6. Conservation: transfers are atomic, so money only enters by deposit and leaves by withdrawal.
  let deposits = 0;
  let withdrawals = 0;
  let transfers = 0;
  for await (const { record } of wal.readFrom(loaded.position)) {
    const e = packr.unpack(record.value) as Event;
    if (e.type === 'deposited') deposits += e.ref ? 0 : e.amount;
    if (e.type === 'withdrawn') {
      if (e.ref) transfers++;
      else withdrawals += e.amount;
    }
  }
  const snapTotal = loaded.accounts.reduce((s, [, a]) => s + a.balance, 0);
  console.log(
    `\nconservation since the snapshot: ${snapTotal} + ${deposits} deposited - ${withdrawals} withdrawn = ${snapTotal + deposits - withdrawals}; ` +
      `balances total ${total(bank.state)} (${transfers} transfers moved money, created none)`,
  );
  await wal.close();
  if (!same(state, full) || !same(tail, bank.state) || snapTotal + deposits - withdrawals !== total(bank.state)) process.exitCode = 1;
}

const keep = process.argv[2] !== undefined;
if (keep && fs.existsSync(process.argv[2]!) && fs.readdirSync(process.argv[2]!).length > 0) {
  console.error(`${process.argv[2]} is not empty: pass a new or empty directory (the demo starts from an empty log)`);
  process.exit(2);
}
const root = process.argv[2] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-events-'));
fs.mkdirSync(root, { recursive: true });
try {
  await main(root);
} finally {
  if (!keep) fs.rmSync(root, { recursive: true, force: true });
}
