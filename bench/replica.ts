/**
 * Replica benchmark: `npm run bench:replica [-- units [changesPerUnit]]` (needs `nats-server`).
 *
 * The replica example's two halves in this process, against a nats-server with JetStream that it
 * starts on 127.0.0.1 (store in a temp directory): a leader DB gets `units` writes (default
 * 10,000 single puts; with `changesPerUnit` > 1, batches of that many), 16 B keys and 100 B
 * values, before publishing starts; then the leader's `Publisher` publishes the backlog (one
 * message in flight), then a `Follower` applies it. Reported per half: wall time and this
 * process's CPU time (`process.cpuUsage`, which the nats-server's own CPU is not part of; on a
 * shared machine the CPU time is the figure to compare).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Follower } from '../examples/replica/follower.js';
import { Publisher } from '../examples/replica/leader.js';
import { ensureStream } from '../examples/replica/nats.js';
import { streamNames } from '../examples/replica/protocol.js';
import { DB } from '../src/index.js';
import { findNatsServer, INSTALL_HINT, startNatsServer } from '../examples/replica/nats-server.js';

const [units = 10_000, per = 1] = process.argv
  .slice(2)
  .filter((a) => /^\d+$/.test(a))
  .map(Number);
const bin = findNatsServer();
if (!bin) {
  console.error(`bench:replica needs the nats-server binary: ${INSTALL_HINT}`);
  process.exit(2);
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-bench-replica-'));
const server = await startNatsServer(bin, path.join(dir, 'nats'));
const nc = await connect({ servers: server.url });
try {
  const { stream, subject } = streamNames('bench');
  const jsm = await jetstreamManager(nc);
  await ensureStream(jsm, stream, subject);
  const db = await DB.open<string, string>(path.join(dir, 'leader'), { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  const value = 'v'.repeat(100);
  const key = (i: number): string => `key:${String(i % 100_000).padStart(12, '0')}`;
  for (let u = 0; u < units; u++) {
    if (per === 1) await db.put(key(u), value);
    else await db.batch(Array.from({ length: per }, (_, i) => ({ type: 'put' as const, key: key(u * per + i), value })));
  }
  const total = units * per;
  const report = (what: string, t0: number, c0: NodeJS.CpuUsage): void => {
    const cpu = process.cpuUsage(c0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const wall = performance.now() - t0;
    console.log(
      `${what}: ${units} units x ${per} in ${wall.toFixed(0)} ms wall (${Math.round((units / wall) * 1000)} units/s), ` +
        `${cpuMs.toFixed(0)} ms CPU (${Math.round((cpuMs * 1000) / units)} us CPU per unit)`,
    );
  };

  const publisher = new Publisher(db, jetstream(nc), subject, 'replica-bench');
  let t0 = performance.now();
  let c0 = process.cpuUsage();
  const publishing = publisher.run();
  while (publisher.status.lastSeq < total) await new Promise((r) => setTimeout(r, 2));
  report('leader publish ', t0, c0);
  await publisher.stop();
  await publishing;
  await db.close();

  const follower = await Follower.open(path.join(dir, 'follower'));
  t0 = performance.now();
  c0 = process.cpuUsage();
  const consuming = follower.consume(jetstream(nc), jsm, stream, 'bench');
  while (follower.applied.seq < total) await new Promise((r) => setTimeout(r, 2));
  report('follower apply ', t0, c0);
  await follower.stop();
  await consuming;
  await follower.db.close();
} finally {
  await nc.close();
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
