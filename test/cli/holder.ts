/**
 * Child process for test/cli: holds a DB open for writing until it is killed.
 *
 * Usage: node --import tsx test/cli/holder.ts '{"dir": "..."}'; prints `loaded`, then `ready`
 * once the DB is open (and after one write).
 */
import { DB } from '../../src/db/index.js';
import { OPTIONS } from './helpers.js';

const { dir } = JSON.parse(process.argv[2]!) as { dir: string };
console.log('loaded');
const db = await DB.open(dir, OPTIONS);
await db.put('held', 'by a live process', { sync: true });
console.log('ready');
setInterval(() => undefined, 60_000);
