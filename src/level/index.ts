/**
 * sediment/level: sediment as an abstract-level 3 database, for the Level ecosystem.
 *
 * ```ts
 * import { SedimentLevel } from 'sediment/level';
 * const db = new SedimentLevel('./data/app', { keyEncoding: 'utf8', valueEncoding: 'json', fsync: { batchMs: 5 } });
 * await db.put('a', { n: 1 });
 * ```
 *
 * @module
 */
export {
  SedimentLevel,
  type SedimentLevelOptions,
  type SedimentOptions,
  type SedimentWriteOptions,
  type SedimentPutOptions,
  type SedimentDelOptions,
  type SedimentBatchOptions,
} from './level.js';
export { SedimentSnapshot } from './snapshot.js';
export { SedimentEntryIterator, SedimentKeyIterator, SedimentValueIterator } from './iterator.js';
