/**
 * The replica follower (examples/replica/follower.ts) on its own, against a real nats-server:
 * the test publishes the leader's messages itself (the wire format of protocol.ts), including
 * what a crashing leader produces (the same id again, which JetStream drops; the same changes
 * under another id, as after a restart past the duplicate window), SIGKILLs the follower while
 * it applies, and then publishes a unit that skips sequence numbers. The follower must end with
 * exactly the model's contents, count every change once, and stop loudly at the gap without
 * applying anything of it.
 *
 * Skipped with a warning without `nats-server`, failed when `SEDIMENT_REQUIRE_NATS=1`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureStream } from '../../examples/replica/nats.js';
import { encodeUnit, messageId, streamNames, type WireChange, type WireUnit } from '../../examples/replica/protocol.js';
import { DB } from '../../src/index.js';
import { builtScript, fixtureScope } from '../support/child.js';
import { sleep } from '../support/process.js';
import { findNatsServer, INSTALL_HINT, type NatsServer, startNatsServer } from '../../examples/replica/nats-server.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const NAME = 'ftest';
const bin = findNatsServer();
const required = process.env.SEDIMENT_REQUIRE_NATS === '1';
if (!bin && !required) console.warn(`replica follower test skipped: the nats-server binary is not installed; ${INSTALL_HINT}`);

const { live, tempDir } = fixtureScope('sediment-follower-');

interface Follower {
  child: ChildProcess;
  port: Promise<number>;
  exited: Promise<number | null>;
  stderr(): string;
}

function startFollower(args: string[]): Follower {
  const child = spawn(process.execPath, [builtScript(path.join(ROOT, 'examples/replica/follower.ts')), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let out = '';
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      live.delete(child);
      r(code);
    }),
  );
  const port = new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /^listening (\d+)$/m.exec(out);
      if (m) resolve(Number(m[1]));
    });
    void exited.then((code) => reject(new Error(`follower exited (${code}) before listening:\n${err}`)));
  });
  port.catch(() => undefined);
  return { child, port, exited, stderr: () => err };
}

async function status(f: Follower): Promise<{ bookmark: { seq: number; changes: number }; duplicates: number }> {
  const res = await fetch(`http://127.0.0.1:${await f.port}/status`).catch((err: unknown) => {
    throw new Error(`follower unreachable (exit code ${f.child.exitCode}):\n${f.stderr()}`, { cause: err });
  });
  return (await res.json()) as { bookmark: { seq: number; changes: number }; duplicates: number };
}

describe.skipIf(!bin && !required)('replica follower', () => {
  let server: NatsServer | undefined;
  afterAll(async () => {
    await server?.stop();
  });

  it('applies each unit once across redeliveries, republishes and a SIGKILL; stops at a gap', async () => {
    if (!bin) throw new Error(`SEDIMENT_REQUIRE_NATS=1 but the nats-server binary is not installed: ${INSTALL_HINT}`);
    const dir = tempDir();
    server = await startNatsServer(bin, path.join(dir, 'nats'));
    const { stream, subject } = streamNames(NAME);
    const nc = await connect({ servers: server.url });
    try {
      await ensureStream(await jetstreamManager(nc), stream, subject);
      const js = jetstream(nc);

      // The leader's units: seqs 1..N, one to four changes each, positions growing.
      const model = new Map<string, string>();
      const units: WireUnit[] = [];
      let seq = 0;
      let offset = 0;
      for (let u = 0; u < 600; u++) {
        const changes: WireChange[] = [];
        for (let i = 0, n = 1 + (u % 4); i < n; i++) {
          const key = `k${(u * 7 + i * 13) % 97}`;
          if ((u + i) % 5 === 4) {
            changes.push({ seq: ++seq, type: 'del', key });
            model.delete(key);
          } else {
            changes.push({ seq: ++seq, type: 'put', key, value: `u${u}.${i}` });
            model.set(key, `u${u}.${i}`);
          }
        }
        const position = { segmentId: 1 + Math.floor(offset / 10_000), offset: offset % 10_000 };
        offset += 100;
        units.push({ v: 1, position, next: { segmentId: position.segmentId, offset: position.offset + 100 }, changes });
      }
      const publish = async (u: WireUnit, id = messageId(u.position)): Promise<boolean> =>
        (await js.publish(subject, encodeUnit(u), { msgID: id })).duplicate;

      const args = ['--db', path.join(dir, 'follower'), '--nats', server.url, '--name', NAME, '--durable', 'f1'];
      let f = startFollower(args);
      await f.port;
      let republished = 0;
      for (let i = 0; i < units.length; i++) {
        expect(await publish(units[i]!)).toBe(false);
        // A leader restarted within the duplicate window sends the same id: JetStream drops it.
        if (i % 50 === 10) expect(await publish(units[i]!)).toBe(true);
        // Past the window, its republish gets in (here: another id): the follower must skip it.
        if (i % 50 === 20) {
          for (const u of units.slice(i - 3, i + 1)) expect(await publish(u, `late-${messageId(u.position)}`)).toBe(false);
          republished += 4;
        }
        if (i === 300) {
          // SIGKILL while it applies: units applied but not yet acknowledged come again.
          while ((await status(f)).bookmark.seq === 0) await sleep(10);
          f.child.kill('SIGKILL');
          await f.exited;
          f = startFollower(args);
        }
      }
      const deadline = Date.now() + 90_000; // generous: the machine may be loaded; a hang still fails
      while ((await status(f)).bookmark.seq < seq && Date.now() < deadline) await sleep(50);
      const st = await status(f);
      expect(st.bookmark).toMatchObject({ seq, changes: seq });
      const dump = (await (await fetch(`http://127.0.0.1:${await f.port}/dump`)).json()) as [string, string][];
      expect(dump).toEqual([...model].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      expect(republished).toBeGreaterThan(0);

      // A graceful stop (SIGTERM) acknowledges everything applied; the restart keeps its place.
      f.child.kill('SIGTERM');
      expect(await f.exited).toBe(0);
      const info = await (await jetstreamManager(nc)).consumers.info(stream, 'f1');
      expect(info.num_ack_pending).toBe(0);
      f = startFollower(args);
      expect((await status(f)).bookmark).toMatchObject({ seq, changes: seq });

      // A follower whose DB is gone, under the same durable name, starts again from the first
      // message (the consumer's acknowledgements belong to the old DB) and reaches the same state.
      f.child.kill('SIGTERM');
      expect(await f.exited).toBe(0);
      fs.rmSync(path.join(dir, 'follower'), { recursive: true, force: true });
      f = startFollower(args);
      const deadline2 = Date.now() + 90_000;
      while ((await status(f)).bookmark.seq < seq && Date.now() < deadline2) await sleep(50);
      expect((await status(f)).bookmark).toMatchObject({ seq, changes: seq });
      const again = (await (await fetch(`http://127.0.0.1:${await f.port}/dump`)).json()) as [string, string][];
      expect(again).toEqual(dump);

      // A unit that skips a sequence number: the follower stops, naming the gap, applying nothing.
      await publish({
        v: 1,
        position: { segmentId: 999, offset: 0 },
        next: { segmentId: 999, offset: 50 },
        changes: [{ seq: seq + 2, type: 'put', key: 'gap', value: 'x' }],
      });
      expect(await f.exited).toBe(1);
      expect(f.stderr()).toMatch(new RegExp(`ReplicaGapError.*starts at leader seq ${seq + 2}, but the last applied is ${seq}`));
      const db = await DB.open<string, string>(path.join(dir, 'follower'), { keyEncoding: 'utf8', valueEncoding: 'utf8', readOnly: true });
      try {
        expect(await db.get('d:gap')).toBeUndefined();
        expect(JSON.parse((await db.get('m:applied'))!)).toMatchObject({ seq, changes: seq });
      } finally {
        await db.close();
      }
    } finally {
      await nc.close();
    }
  }, 180_000);
});
