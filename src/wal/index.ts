/**
 * sediment/wal: the segmented write-ahead log, usable on its own ("raw WAL").
 *
 * ```ts
 * import { Wal, Record } from 'sediment/wal';
 * const { wal, recovery } = await Wal.open({ dir: './log', fsync: 'always' });
 * const pos = await wal.append(Record.put('k', 'v'));
 * for await (const { record, position } of wal.readFrom({ segmentId: 0, offset: 0 })) { ... }
 * await wal.close();
 * ```
 *
 * @module
 */
export { Wal, type WalOpenResult, type WalRetention, type WalStats } from './wal.js';
export { Record, loadZstd, type Bytes, type RecordCompression, type RecordPutOptions } from './record.js';
export { comparePositions, type Position } from './position.js';
export type { FsyncPolicy, RecoveryMode, WalOptions } from './options.js';
export type { RecoveryInfo, Truncation, QuarantinedFile } from './recovery.js';
export type { LogEntry } from './reader.js';
export { noopMeter, type Meter, type WalCounter, type WalHistogram, type WalEvent } from './meter.js';
export { FORMAT_VERSION as WAL_FORMAT_VERSION } from './format.js';
export * from '../public-errors.js';
