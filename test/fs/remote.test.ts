/**
 * RemoteFileSystem forwards every operation to the file system served on the other end of its
 * port, the optional ones (link, rmdir) included, and reports `ENOTSUP` when the served file
 * system lacks them. (The synchronous calls block on Atomics.wait and need two threads: the
 * background worker's tests cover them.)
 */
import { MessageChannel } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { MemFileSystem } from '../../src/fs/mem.js';
import { RemoteFileSystem, serveFileSystem, syncChannel } from '../../src/fs/remote.js';
import { type FileSystem, requiredOperations } from '../../src/fs/types.js';

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

function serve(fs: FileSystem): RemoteFileSystem {
  const { port1, port2 } = new MessageChannel();
  const sync = syncChannel();
  const stop = serveFileSystem(fs, port1, sync);
  const remote = new RemoteFileSystem(port2, sync);
  stops.push(async () => {
    remote.close();
    await stop();
  });
  return remote;
}

describe('RemoteFileSystem', () => {
  it('forwards link and rmdir', async () => {
    const mem = new MemFileSystem();
    await mem.mkdir('/db/sub');
    const h = await mem.open('/db/f', 'create');
    await h.write(Buffer.from('abc'), 0, 3, 0);
    await h.close();
    const remote = serve(mem);
    await remote.link('/db/f', '/db/g');
    expect(Buffer.from(mem.readFileBytes('/db/g')).toString()).toBe('abc');
    await expect(remote.link('/db/f', '/db/g')).rejects.toMatchObject({ code: 'EEXIST' });
    await remote.rmdir('/db/sub');
    expect((await mem.readdir('/db')).sort()).toEqual(['f', 'g']);
  });

  it('fails link and rmdir with ENOTSUP when the served file system has neither', async () => {
    const mem = new MemFileSystem();
    await mem.mkdir('/db');
    const bare = requiredOperations(mem);
    const remote = serve(bare);
    await expect(remote.link('/db/f', '/db/g')).rejects.toMatchObject({ code: 'ENOTSUP' });
    await expect(remote.rmdir('/db')).rejects.toMatchObject({ code: 'ENOTSUP' });
  });
});
