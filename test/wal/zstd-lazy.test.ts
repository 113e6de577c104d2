/**
 * zstd's WebAssembly codec loads on first use, not at import (issue #12): a record made before it
 * has loaded stores its value raw (and starts the load); Wal.open loads it, so every record a
 * log holds can be decoded.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Record, Wal, loadZstd } from '../../src/wal/index.js';

describe('zstd, loaded lazily', () => {
  it('before the load a zstd record stores its value raw; after Wal.open it compresses, and both read back', async () => {
    const value = 'compressible '.repeat(200);
    const early = Record.put('k1', value, { compression: 'zstd' });
    expect(early.compression).toBe('none');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sediment-zstd-'));
    try {
      const { wal } = await Wal.open({ dir, fsync: 'os' });
      const late = Record.put('k2', value, { compression: 'zstd' });
      expect(late.compression).toBe('zstd');
      await wal.append(early);
      await wal.append(late);
      await wal.close();
      const { wal: again } = await Wal.open({ dir, fsync: 'os' });
      const got: string[] = [];
      for await (const { record } of again.readFrom({ segmentId: 0, offset: 0 }))
        got.push(`${Buffer.from(record.key).toString()}:${record.compression}:${Buffer.from(record.value).toString() === value}`);
      expect(got).toEqual(['k1:none:true', 'k2:zstd:true']);
      await again.close();
      await loadZstd(); // idempotent
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
