/**
 * sediment/prometheus: a meter that reports a DB's (or a raw WAL's) metrics to a prom-client
 * registry. prom-client is an optional peer dependency: this entry point is the only part of
 * sediment that imports it.
 *
 * ```ts
 * import { Registry } from 'prom-client';
 * import { DB } from 'sediment';
 * import { PrometheusMeter } from 'sediment/prometheus';
 *
 * const registry = new Registry();
 * const meter = new PrometheusMeter({ registry }); // prefix 'sediment_' by default
 * const db = await DB.open(dir, { meter });         // or Wal.open({ dir, meter })
 * meter.track(db);                                   // state read from db.stats() at each scrape
 * ```
 *
 * @module
 */
export { PrometheusMeter, type PrometheusMeterOptions, type StatsSource } from './meter.js';
export { METRIC_NAMES } from './metrics.js';
