/**
 * A throwaway `nats-server` with JetStream, for the replica tests and bench/replica.ts: 127.0.0.1, a port the server
 * picks itself (`-p -1`, read back from its ports file, so no race for a free port), its store in
 * a temp directory; stopped by its handle.
 *
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The `nats-server` binary: `$SEDIMENT_NATS_SERVER` if set (only that), else where Debian's
 * package puts it, then PATH. Undefined when it is not installed (or not executable).
 */
export function findNatsServer(): string | undefined {
  const given = process.env.SEDIMENT_NATS_SERVER;
  if (given !== undefined) {
    try {
      fs.accessSync(given, fs.constants.X_OK);
      return given;
    } catch {
      return undefined;
    }
  }
  const dirs = ['/usr/sbin', '/usr/bin', '/usr/local/bin', ...(process.env.PATH ?? '').split(path.delimiter)];
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, 'nats-server');
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {}
  }
  return undefined;
}

export const INSTALL_HINT = 'install it with `apt-get install -y nats-server` (Debian package, 2.9+ with JetStream)';

/** A running server. */
export interface NatsServer {
  url: string;
  child: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

/** Starts `bin` with JetStream, its store and ports file under `dir`; resolves once it listens. */
export async function startNatsServer(bin: string, dir: string): Promise<NatsServer> {
  const store = path.join(dir, 'jetstream');
  fs.mkdirSync(store, { recursive: true });
  const child = spawn(bin, ['-js', '-a', '127.0.0.1', '-p', '-1', '-sd', store, '--ports_file_dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.on('data', (b: Buffer) => (log += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const portsFile = path.join(dir, `nats-server_${child.pid}.ports`);
  const deadline = Date.now() + 60_000;
  let url: string | undefined;
  while (url === undefined) {
    if (child.exitCode !== null) throw new Error(`nats-server exited (${child.exitCode}) before listening:\n${log}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nats-server did not write ${portsFile} within 60 s:\n${log}`);
    }
    try {
      const ports = JSON.parse(fs.readFileSync(portsFile, 'utf8')) as { nats: string[] };
      url = ports.nats[0]!.replace(/^nats:\/\//, '');
    } catch {
      await sleep(50);
    }
  }
  // JetStream is ready once the server logs so (the client port may open a moment earlier).
  while (!log.includes('Server is ready')) {
    if (Date.now() > deadline) throw new Error(`nats-server did not become ready within 60 s:\n${log}`);
    await sleep(20);
  }
  return {
    url,
    child,
    log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}
