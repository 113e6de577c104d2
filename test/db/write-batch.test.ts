/**
 * The DB write batch (src/db/write-batch.ts): one WAL record per DB write, carrying its seqs.
 * The codec is total; a DB of format 1 (one WAL record per op, made by the previous code) opens,
 * is upgraded and keeps working; an oversize write is refused before anything is written; seqs
 * read back from the log are those the writes had.
 */
import { fc, test as fcTest } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { DB } from '../../src/db/index.js';
import { decodeOptionsFile, encodeOptionsFile, readOptionsFile } from '../../src/db/options-file.js';
import { type BatchOp, checkWriteBatch, decodeWriteBatch, encodeWriteBatch, WRITE_BATCH_HEADER_SIZE } from '../../src/db/write-batch.js';
import { MemFileSystem } from '../../src/fs/mem.js';
import { checkPayload, Record } from '../../src/wal/record.js';
import { Wal } from '../../src/wal/wal.js';
import { DIR, walFiles } from './helpers/harness.js';

const bytes = fc.uint8Array({ maxLength: 40 });
const op: fc.Arbitrary<BatchOp> = fc.oneof(
  fc.record({
    kind: fc.constant('put' as const),
    key: bytes,
    value: bytes,
    expiresAt: fc.option(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { nil: undefined }),
  }),
  fc.record({ kind: fc.constant('delete' as const), key: bytes, value: fc.constant(new Uint8Array(0)), expiresAt: fc.constant(undefined) }),
);

describe('the write batch codec', () => {
  fcTest.prop([fc.array(op, { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 2 ** 40 })])(
    'decode(encode(ops, seq)) gives the ops and the seq back',
    (ops, seq) => {
      const d = decodeWriteBatch(encodeWriteBatch(ops, seq));
      expect(d.ok).toBe(true);
      if (!d.ok) return;
      expect(d.batch.seq).toBe(seq);
      expect(d.batch.ops.map((o) => ({ ...o, key: [...o.key], value: [...o.value] }))).toEqual(
        ops.map((o) => ({ ...o, key: [...o.key], value: [...o.value] })),
      );
    },
  );

  fcTest.prop([fc.array(op, { minLength: 1, maxLength: 8 }), fc.nat(), fc.integer({ min: 0, max: 7 })])(
    'total: a truncated or bit-flipped batch is a reason or a batch that re-encodes to exactly its bytes, never a throw',
    (ops, at, bit) => {
      const good = encodeWriteBatch(ops, 5);
      const cut = good.subarray(0, at % good.length);
      expect(decodeWriteBatch(cut).ok).toBe(false);
      const flipped = Buffer.from(good);
      flipped[at % good.length]! ^= 1 << bit;
      const d = decodeWriteBatch(flipped);
      if (d.ok) expect(encodeWriteBatch(d.batch.ops, d.batch.seq).equals(flipped)).toBe(true);
    },
  );

  fcTest.prop([fc.uint8Array({ maxLength: 64 })])('total on arbitrary bytes', (b) => {
    const d = decodeWriteBatch(b);
    expect(typeof (d.ok ? d.batch.seq : d.reason)).not.toBe('undefined');
  });

  it('refuses what it cannot be: no op, seqs past 2^53, trailing bytes, unknown kinds', () => {
    const one = encodeWriteBatch([{ kind: 'delete', key: Buffer.from('k'), value: new Uint8Array(0), expiresAt: undefined }], 1);
    expect(checkWriteBatch(one)).toBeUndefined();
    const none = Buffer.from(one.subarray(0, WRITE_BATCH_HEADER_SIZE));
    none.writeUInt32LE(0, 9);
    expect(checkWriteBatch(none)).toMatch(/no operation/);
    const late = Buffer.from(one);
    late.writeUInt32LE(0xffffffff, 1);
    late.writeUInt32LE(0x1fffff, 5);
    expect(checkWriteBatch(late)).toBeUndefined(); // seq 2^53 - 1, one op: fine
    late.writeUInt32LE(2, 9);
    expect(checkWriteBatch(late)).toMatch(/2\^53/);
    expect(checkWriteBatch(Buffer.concat([one, Buffer.from([0])]))).toMatch(/after its last op/);
    const kind = Buffer.from(one);
    kind[WRITE_BATCH_HEADER_SIZE] = 0x03;
    expect(checkWriteBatch(kind)).toMatch(/unknown kind/);
    expect(checkWriteBatch(Buffer.from([2, ...one.subarray(1)]))).toMatch(/tag/);
  });
});

/** A DB directory as the previous code left it: OPTIONS of format 1 and one WAL record per op. */
async function formatOneDb(mem: MemFileSystem, records: Record[]): Promise<void> {
  const db = await DB.open(DIR, { fs: mem, valueEncoding: 'utf8' });
  await db.close();
  const p = (await readOptionsFile(mem, DIR))!;
  const file = `${DIR}/OPTIONS`;
  mem.writeFileBytes(file, encodeOptionsFile({ ...p, formatVersion: 1 }));
  const { wal } = await Wal.open({ dir: `${DIR}/wal`, fs: mem, fsync: 'always' });
  for (const r of records.slice(0, -2)) await wal.append(r);
  if (records.length >= 2) await wal.appendBatch(records.slice(-2)); // the old code's batch: FIRST, LAST frames
  await wal.close();
}

describe('a DB of format 1 (one WAL record per op, made by the previous code)', () => {
  it('opens, replays its records with counted seqs, is upgraded (flushed, OPTIONS format 2) and keeps working', async () => {
    const mem = new MemFileSystem();
    await formatOneDb(mem, [Record.put('a', '1'), Record.put('b', '2'), Record.delete('a'), Record.put('c', '3'), Record.put('d', '4')]);
    expect(decodeOptionsFile(mem.readFileBytes(`${DIR}/OPTIONS`), 'OPTIONS').formatVersion).toBe(1);
    // A read-only handle reads it as it is, and changes nothing.
    const ro = await DB.open(DIR, { fs: mem, valueEncoding: 'utf8', readOnly: true });
    expect(await ro.get('b')).toBe('2');
    expect(ro.stats().lastSequence).toBe(5);
    await ro.close();
    expect(decodeOptionsFile(mem.readFileBytes(`${DIR}/OPTIONS`), 'OPTIONS').formatVersion).toBe(1);

    let db = await DB.open(DIR, { fs: mem, valueEncoding: 'utf8' });
    expect(decodeOptionsFile(mem.readFileBytes(`${DIR}/OPTIONS`), 'OPTIONS').formatVersion).toBe(2);
    expect(db.stats().lastSequence).toBe(5);
    expect(db.stats().flushes).toBe(1); // the old records went to a table before any new write
    expect(await db.get('a')).toBeUndefined();
    expect(await db.get('d')).toBe('4');
    await db.batch([
      { type: 'put', key: 'e', value: '5' },
      { type: 'del', key: 'b' },
    ]);
    expect(db.stats().lastSequence).toBe(7);
    const seqs: (number | undefined)[] = [];
    for await (const e of db.wal.readFrom({ segmentId: 0, offset: 0 })) seqs.push(e.seq);
    // The single-op records still in the active segment come without seqs, then the batch with its own.
    expect(seqs.slice(-2)).toEqual([6, 7]);
    await db.close();
    db = await DB.open(DIR, { fs: mem, valueEncoding: 'utf8' });
    expect(db.stats().lastSequence).toBe(7);
    expect([await db.get('b'), await db.get('c'), await db.get('e')]).toEqual([undefined, '3', '5']);
    await db.close();
  });

  it('a crash after the upgrade flush but before OPTIONS says format 2 opens again and upgrades then', async () => {
    const mem = new MemFileSystem();
    await formatOneDb(mem, [Record.put('a', '1'), Record.put('b', '2')]);
    const db = await DB.open(DIR, { fs: mem, valueEncoding: 'utf8' });
    await db.close();
    // Put OPTIONS back to format 1: what a crash before its rename leaves.
    const p = decodeOptionsFile(mem.readFileBytes(`${DIR}/OPTIONS`), 'OPTIONS');
    mem.writeFileBytes(`${DIR}/OPTIONS`, encodeOptionsFile({ ...p, formatVersion: 1 }));
    const again = await DB.open(DIR, { fs: mem, valueEncoding: 'utf8' });
    expect([await again.get('a'), await again.get('b')]).toEqual(['1', '2']);
    expect(again.stats().lastSequence).toBe(2);
    await again.close();
  });
});

describe('one WAL record per write', () => {
  it('a batch of 1000 puts is one record; seqs replay the same after a restart', async () => {
    const mem = new MemFileSystem();
    let db = await DB.open(DIR, { fs: mem, valueEncoding: 'utf8' });
    await db.put('first', 'x');
    const ops = Array.from({ length: 1000 }, (_, i) => ({ type: 'put' as const, key: `k${String(i).padStart(4, '0')}`, value: 'v' }));
    await db.batch(ops);
    expect(db.wal.stats().records).toBe(2);
    expect(db.stats().lastSequence).toBe(1001);
    const before: number[] = [];
    for await (const e of db.wal.readFrom({ segmentId: 0, offset: 0 })) before.push(e.seq!);
    expect(before).toEqual(Array.from({ length: 1001 }, (_, i) => i + 1));
    await db.close();
    db = await DB.open(DIR, { fs: mem, valueEncoding: 'utf8' });
    expect(db.stats().lastSequence).toBe(1001);
    await db.put('after', 'y');
    expect(db.stats().lastSequence).toBe(1002);
    await db.close();
  });

  it('a write too large for one record is refused with RangeError before anything is written', async () => {
    const mem = new MemFileSystem();
    const db = await DB.open(DIR, { fs: mem, valueEncoding: 'binary', maxValueSize: 40 * 1024 * 1024 });
    const big = new Uint8Array(40 * 1024 * 1024);
    const ops = Array.from({ length: 30 }, (_, i) => ({ type: 'put' as const, key: `k${i}`, value: big }));
    const files = walFiles(mem).map((f) => mem.readFileBytes(f).length);
    await expect(db.batch(ops)).rejects.toThrow(RangeError);
    expect(walFiles(mem).map((f) => mem.readFileBytes(f).length)).toEqual(files);
    expect(db.stats().lastSequence).toBe(0);
    await db.put('still', new Uint8Array([1]));
    expect(db.stats().lastSequence).toBe(1);
    await db.close();
  });
});

describe('the WAL opaque record that carries a batch', () => {
  it('round-trips through a raw WAL, survives a reopen, and only the exact flags byte 0x10 is one', async () => {
    const mem = new MemFileSystem();
    const { wal } = await Wal.open({ dir: '/w', fs: mem, fsync: 'always' });
    const bytes = new Uint8Array([1, 2, 3, 0, 255]);
    const r = Record.opaque(bytes);
    bytes[0] = 9; // copied: the record does not change
    await wal.append(r);
    await wal.append(Record.opaque(new Uint8Array(0)));
    await wal.append(Record.put('k', 'v'));
    await wal.close();
    const { wal: again } = await Wal.open({ dir: '/w', fs: mem });
    const got: string[] = [];
    for await (const { record } of again.readFrom({ segmentId: 0, offset: 0 })) {
      got.push(record.opaque ? `opaque ${Buffer.from(record.value).toString('hex')}` : `put ${Buffer.from(record.key).toString()}`);
    }
    expect(got).toEqual(['opaque 01020300ff', 'opaque ', 'put k']);
    await again.close();
    expect(checkPayload(Uint8Array.from([0x10, 1, 2]), 100)).toBeUndefined();
    expect(checkPayload(Uint8Array.from([0x11, 1, 2]), 100)).toMatch(/opaque/);
    expect(checkPayload(Uint8Array.from([0x20, 0, 0, 0, 0]), 100)).toMatch(/unknown record flags/);
    expect(() => Record.opaque('x' as unknown as Uint8Array)).toThrow(TypeError);
  });
});
