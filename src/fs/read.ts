/**
 * Positional reads that keep going after short reads: every layer reads file ranges this way.
 *
 * @module
 */
import { ioStep } from '../errors.js';
import type { FileHandle } from './types.js';

/**
 * Reads `buf.length` bytes at `position`, continuing after short reads; returns the bytes read
 * (fewer only at the end of the file). An OS error becomes an `IoError('read')` naming the file.
 */
export async function readFully(handle: FileHandle, buf: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const n = await ioStep('read', handle.path, () => handle.read(buf, done, buf.length - done, position + done));
    if (n <= 0) break;
    done += n;
  }
  return done;
}
