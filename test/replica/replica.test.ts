/**
 * The read-replica example (examples/replica) against a real nats-server with JetStream: the
 * leader takes writes (puts, deletes, atomic batches) over HTTP from four writers and is
 * SIGKILLed while they run, then restarted; the follower is SIGKILLed and restarted too. At the
 * end the follower holds exactly the leader's contents, every acknowledged write is in both,
 * no change was applied twice (the follower's bookmark counts changes applied, atomically with
 * them, and must equal the leader's last sequence number), the stream holds every change once
 * and in order (JetStream dropped the republished ids), and no read of the follower ever showed
 * part of a batch.
 *
 * Without `nats-server` the test is skipped with a warning, or fails when
 * `SEDIMENT_REQUIRE_NATS=1` (as in CI).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeUnit, streamNames } from '../../examples/replica/protocol.js';
import { builtScript, fixtureScope } from '../support/child.js';
import { sleep } from '../support/process.js';
import { findNatsServer, INSTALL_HINT, type NatsServer, startNatsServer } from '../../examples/replica/nats-server.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const NAME = 'test';
const bin = findNatsServer();
const required = process.env.SEDIMENT_REQUIRE_NATS === '1';
if (!bin && !required) console.warn(`replica test skipped: the nats-server binary is not installed; ${INSTALL_HINT}`);

const { live, tempDir } = fixtureScope('sediment-replica-');

/** A spawned leader or follower: its port once it listens. */
interface Proc {
  child: ChildProcess;
  port: number;
  stderr(): string;
}

function start(script: 'leader' | 'follower', args: string[]): Promise<Proc> {
  const child = spawn(process.execPath, [builtScript(path.join(ROOT, 'examples/replica', `${script}.ts`)), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  let out = '';
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /^listening (\d+)$/m.exec(out);
      if (m) resolve({ child, port: Number(m[1]), stderr: () => err });
    });
    child.once('exit', (code, signal) => reject(new Error(`${script} exited (${code ?? signal}) before listening:\n${err}`)));
  });
}

async function kill(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGKILL');
  await exited;
}

type Op = { type: 'put'; key: string; value: string; ttlMs?: number } | { type: 'del'; key: string };

/** One write request: what it did, and whether the leader acknowledged it (HTTP 204). */
interface Sent {
  lane: number;
  ops: Op[];
  acked: boolean;
}

async function send(port: number, ops: Op[]): Promise<boolean> {
  const url = `http://127.0.0.1:${port}`;
  try {
    let res: Response;
    if (ops.length > 1) res = await fetch(`${url}/batch`, { method: 'POST', body: JSON.stringify(ops) });
    else if (ops[0]!.type === 'put') {
      const ttl = ops[0]!.ttlMs === undefined ? '' : `?ttlMs=${ops[0]!.ttlMs}`;
      res = await fetch(`${url}/k/${encodeURIComponent(ops[0]!.key)}${ttl}`, { method: 'PUT', body: ops[0]!.value });
    } else res = await fetch(`${url}/k/${encodeURIComponent(ops[0]!.key)}`, { method: 'DELETE' });
    if (res.status !== 204) throw new Error(`leader answered ${res.status}: ${await res.text()}`);
    return true;
  } catch (err) {
    // The leader was killed with the request in flight: not acknowledged (it may or may not be there).
    if ((err as Error).message.startsWith('leader answered')) throw err;
    return false;
  }
}

async function getJson<T>(port: number, p: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`);
  return (await res.json()) as T;
}

/** Lane `lane`'s `j`th request: keys of its own (so each key's history is one writer's order). */
function request(lane: number, j: number): Op[] {
  const k = (i: number): string => `w${lane}:k${String(i % 25).padStart(2, '0')}`;
  if (j % 6 === 5) {
    // An atomic batch: n keys of its own, all with the batch's id, plus a put and a delete.
    const n = 2 + (j % 4);
    const ops: Op[] = Array.from({ length: n }, (_, i) => ({ type: 'put', key: `w${lane}:b${j}:${i}`, value: `batch ${n}` }));
    ops.push({ type: 'put', key: k(j), value: `v${j}` }, { type: 'del', key: k(j + 7) });
    return ops;
  }
  if (j % 6 === 2) return [{ type: 'del', key: k(j) }];
  // A TTL far beyond the test: the follower must keep the value (its expiry travels as an instant).
  if (j % 6 === 3) return [{ type: 'put', key: k(j), value: `t${j}`, ttlMs: 3_600_000 }];
  return [{ type: 'put', key: k(j), value: `v${j}`.padEnd(8 + (j % 40), '.') }];
}

/** Every batch is whole in `entries`: for each `w<l>:b<j>:` prefix, all of its `n` keys. */
function assertNoHalfBatch(entries: [string, string][]): void {
  const seen = new Map<string, { n: number; count: number }>();
  for (const [key, value] of entries) {
    const m = /^(w\d+:b\d+):\d+$/.exec(key);
    if (!m) continue;
    const n = Number(value.split(' ')[1]);
    const s = seen.get(m[1]!) ?? { n, count: 0 };
    s.count++;
    seen.set(m[1]!, s);
  }
  for (const [prefix, s] of seen) expect(s.count, `batch ${prefix} seen in part`).toBe(s.n);
}

/**
 * What each key may hold: the effect of its last acknowledged write, or of any write sent after
 * it that was not acknowledged (killed in flight). Keys never acknowledged: anything they were sent.
 */
function allowedValues(sent: Sent[]): Map<string, Set<string | undefined>> {
  const byKey = new Map<string, { op: Op; acked: boolean }[]>();
  for (const s of sent) for (const op of s.ops) byKey.set(op.key, [...(byKey.get(op.key) ?? []), { op, acked: s.acked }]);
  const allowed = new Map<string, Set<string | undefined>>();
  for (const [key, history] of byKey) {
    let lastAcked = -1;
    history.forEach((h, i) => {
      if (h.acked) lastAcked = i;
    });
    const ok = new Set<string | undefined>(lastAcked < 0 ? [undefined] : []);
    for (let i = Math.max(lastAcked, 0); i < history.length; i++) {
      if (i === lastAcked || !history[i]!.acked) {
        const op = history[i]!.op;
        ok.add(op.type === 'put' ? op.value : undefined);
      }
    }
    allowed.set(key, ok);
  }
  return allowed;
}

describe.skipIf(!bin && !required)('read replica through NATS JetStream', () => {
  let server: NatsServer | undefined;
  afterAll(async () => {
    await server?.stop();
  });

  it('follower equals the leader after SIGKILLs of both; every acknowledged write, none twice, no half batch', async () => {
    if (!bin) throw new Error(`SEDIMENT_REQUIRE_NATS=1 but the nats-server binary is not installed: ${INSTALL_HINT}`);
    const dir = tempDir();
    server = await startNatsServer(bin, path.join(dir, 'nats'));
    const leaderArgs = ['--db', path.join(dir, 'leader'), '--nats', server.url, '--name', NAME];
    const followerArgs = ['--db', path.join(dir, 'follower'), '--nats', server.url, '--name', NAME, '--durable', 'f1'];

    let leader = await start('leader', leaderArgs);
    let follower = await start('follower', followerArgs);
    const sent: Sent[] = [];
    const next = [0, 0, 0, 0];
    let stop = false;
    /** Four writers, each waiting for its previous request (so a key's history is ordered). */
    const writers = next.map(async (_, lane) => {
      while (!stop) {
        const ops = request(lane, next[lane]!++);
        const s: Sent = { lane, ops, acked: false };
        sent.push(s);
        s.acked = await send(leader.port, ops);
        if (!s.acked) await sleep(20); // the leader is down: wait for its restart
      }
    });
    const checks: Promise<void>[] = [];
    const sampleFollower = (): void => {
      const port = follower.port;
      checks.push(getJson<[string, string][]>(port, '/dump').then(assertNoHalfBatch, () => undefined));
    };
    const acked = (): number => sent.filter((s) => s.acked).length;
    const waitAcked = async (n: number): Promise<void> => {
      const target = acked() + n;
      while (acked() < target) {
        sampleFollower();
        await sleep(50);
      }
    };

    await waitAcked(300);
    await kill(leader); // mid-stream: requests in flight, units read but not published or not acked
    leader = await start('leader', leaderArgs);
    await waitAcked(300);
    await kill(follower); // mid-stream: applied but not acknowledged to JetStream
    follower = await start('follower', followerArgs);
    await waitAcked(300);
    stop = true;
    await Promise.all(writers);
    await Promise.all(checks);

    // The follower catches up: its contents equal the leader's.
    const want = await getJson<[string, string][]>(leader.port, '/dump');
    const deadline = Date.now() + 90_000; // generous: the machine may be loaded; a hang still fails
    let got = await getJson<[string, string][]>(follower.port, '/dump');
    while (JSON.stringify(got) !== JSON.stringify(want) && Date.now() < deadline) {
      await sleep(100);
      got = await getJson<[string, string][]>(follower.port, '/dump');
    }
    expect(got).toEqual(want);
    assertNoHalfBatch(got);

    // Every acknowledged write is there (as its last acknowledged state, or a later unacknowledged one).
    const have = new Map(got);
    for (const [key, ok] of allowedValues(sent)) expect(ok, `key ${key} holds ${have.get(key)}`).toContain(have.get(key));
    expect(sent.filter((s) => !s.acked).length).toBeGreaterThan(0); // the kills did cut requests

    // None applied twice: the follower's bookmark counts the changes it applied (in the same batch
    // as them); it equals the leader's last sequence number, the number of changes it made.
    const fs = await getJson<{ bookmark: { seq: number; changes: number } }>(follower.port, '/status');
    const stream = streamNames(NAME).stream;
    const nc = await connect({ servers: server.url });
    try {
      const js = jetstream(nc);
      const info = await (await js.streams.get(stream)).info();
      const last = await (await js.streams.get(stream)).getMessage({ seq: info.state.last_seq });
      const lastSeq = decodeUnit(last!.data).changes.at(-1)!.seq;
      expect(fs.bookmark.seq).toBe(lastSeq);
      expect(fs.bookmark.changes).toBe(lastSeq);
      // The stream holds every change once, in order: the republished ids were dropped.
      let expected = 1;
      for (let s = info.state.first_seq; s <= info.state.last_seq; s++) {
        const m = await (await js.streams.get(stream)).getMessage({ seq: s });
        for (const c of decodeUnit(m!.data).changes) expect(c.seq).toBe(expected++);
      }
      expect(expected - 1).toBe(lastSeq);
    } finally {
      await nc.close();
    }
    // A graceful stop (SIGTERM) ends the feed, publishes what was read, closes and exits 0.
    const leaderExit = new Promise<number | null>((r) => leader.child.once('exit', (code) => r(code)));
    leader.child.kill('SIGTERM');
    expect(await leaderExit).toBe(0);
    await kill(follower);

    // A new DB under the same name would reuse positions and seqs the stream holds: refused.
    const fresh = ['--db', path.join(dir, 'fresh'), '--nats', server.url, '--name', NAME];
    await expect(start('leader', fresh)).rejects.toThrow(/stream SEDIMENT_test is ahead of this DB/);
  }, 180_000);
});
