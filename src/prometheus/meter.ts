/**
 * {@link PrometheusMeter}: a sediment meter (for `DB.open` and `Wal.open`) that reports to a
 * prom-client registry.
 *
 * Cost on the measured path: a `counter()` call is one property lookup and one addition to a
 * Float64Array (the value reaches prom-client at scrape time); a `histogram()` call (one per
 * fsync, flush or compaction, never per record) observes through a prom-client child resolved
 * when the meter was made; `event()` looks at one field.
 *
 * @module
 */
import { register as globalRegistry, type Histogram } from 'prom-client';
import type { DBStats } from '../db/db.js';
import type { DBCounter, DBEvent, DBHistogram, DBMeter } from '../db/meter.js';
import { ClosedError, InvalidConfigError } from '../errors.js';
import type { WalCounter, WalEvent, WalHistogram } from '../wal/meter.js';
import type { WalStats } from '../wal/wal.js';
import { join, type AnyRegistry, type Family, type Member } from './family.js';
import { FED_COUNTERS, OBSERVED_HISTOGRAMS, WAL_FAILURES, type Sample } from './metrics.js';

/** Options of {@link PrometheusMeter}. */
export interface PrometheusMeterOptions {
  /** The registry to register the metrics in. Default: prom-client's global `register`. */
  registry?: AnyRegistry;
  /** Prepended to every metric name. Default `'sediment_'`. */
  prefix?: string;
  /**
   * Constant labels on every series of this meter, e.g. `{ db: 'users' }`: what tells apart the
   * meters of several DBs that share a registry. Label values are strings; `level` and `le` are
   * taken. Default: none.
   */
  labels?: Record<string, string>;
}

/** Anything {@link PrometheusMeter.track} can read at scrape time: a `DB`, a `Wal`, or `db.wal`. */
export interface StatsSource {
  stats(): DBStats | WalStats;
}

const OPTION_NAMES = new Set(['registry', 'prefix', 'labels']);
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Slot in the accumulator of each sediment counter name (a null-prototype object: no inherited keys). */
const COUNTER_SLOT: Readonly<Record<string, number>> = Object.assign(
  Object.create(null) as Record<string, number>,
  Object.fromEntries(FED_COUNTERS.flatMap((c, i) => (c.from === null ? [] : [[c.from, i]]))),
);
const HISTOGRAM_SLOT: Readonly<Record<string, number>> = Object.assign(
  Object.create(null) as Record<string, number>,
  Object.fromEntries(OBSERVED_HISTOGRAMS.map((h, i) => [h.from, i])),
);

const noop = (): void => undefined;

interface Tracked {
  /** What the source said at the last scrape: used when stats() throws, and kept when untracked. */
  last: Sample;
}

/**
 * A meter that reports sediment's counters, histograms and state to Prometheus through
 * prom-client (an optional peer dependency: only `sediment/prometheus` imports it).
 *
 * ```ts
 * import { Registry } from 'prom-client';
 * import { DB } from 'sediment';
 * import { PrometheusMeter } from 'sediment/prometheus';
 *
 * const registry = new Registry();
 * const meter = new PrometheusMeter({ registry });   // metrics named sediment_*
 * const db = await DB.open(dir, { meter });           // counters and histograms: the DB reports them
 * const untrack = meter.track(db);                    // point-in-time values: read from db.stats() at scrape time
 * // GET /metrics: res.end(await registry.metrics())
 * ```
 *
 * Pass the meter to `DB.open` (or `Wal.open`) for the counters and histograms. The values read at
 * scrape time (segments, memtable, levels, block cache) come from the handles the meter tracks:
 * `DB.open` has its DB tracked until it closes; a raw `Wal` is tracked by hand with `track()`. One meter per DB is the usual setup; several DBs in one registry each get a meter with
 * distinct `labels`. A meter that reports for several handles sums them.
 */
export class PrometheusMeter implements DBMeter {
  /** The registry the metrics are registered in. */
  readonly registry: AnyRegistry;
  /** The prefix of every metric name. */
  readonly prefix: string;
  /** The constant labels of every series. */
  readonly labels: Readonly<Record<string, string>>;

  readonly #counts = new Float64Array(FED_COUNTERS.length);
  /** Pre-resolved histogram children, in `OBSERVED_HISTOGRAMS` order, each taking sediment's unit. */
  #observers: ((value: number) => void)[];
  readonly #sources = new Map<StatsSource, Tracked>();
  /** Block cache hits and misses of sources no longer tracked: the counters never go down. */
  #retiredHits = 0;
  #retiredMisses = 0;
  /** The current scrape's sample: every metric of one scrape reads the same stats() calls. */
  #cached: Sample | undefined;
  readonly #member: Member;
  readonly #family: Family;
  #unregistered = false;

  /**
   * Creates the metrics in the registry (or joins those of another meter with the same registry
   * and prefix). Throws `InvalidConfigError` for an unknown option or a bad prefix or label, and
   * when the names are taken: by another meter with the same label values (or with other label
   * names), or by a metric that no meter made.
   */
  constructor(options: PrometheusMeterOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new TypeError('PrometheusMeter options must be an object');
    for (const key of Object.keys(options)) {
      if (!OPTION_NAMES.has(key)) throw new InvalidConfigError(key, 'unknown option of PrometheusMeter');
    }
    const registry = options.registry ?? (globalRegistry as AnyRegistry);
    if (
      typeof registry !== 'object' ||
      registry === null ||
      typeof registry.getSingleMetric !== 'function' ||
      typeof registry.registerMetric !== 'function' ||
      typeof registry.removeSingleMetric !== 'function'
    ) {
      throw new InvalidConfigError('registry', 'expected a prom-client Registry');
    }
    const prefix = options.prefix ?? 'sediment_';
    if (typeof prefix !== 'string' || (prefix !== '' && !METRIC_NAME.test(prefix))) {
      throw new InvalidConfigError(
        'prefix',
        `${JSON.stringify(prefix)} is not the start of a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)`,
      );
    }
    const labels = checkLabels(options.labels ?? {});
    const labelNames = Object.keys(labels).sort();
    this.registry = registry;
    this.prefix = prefix;
    this.labels = labels;
    this.#member = {
      labels,
      key: JSON.stringify(labelNames.map((n) => labels[n])),
      counts: this.#counts,
      sample: () => this.#sample(),
    };
    this.#family = join(registry, prefix, labelNames, this.#member);
    this.#observers = this.#family.histograms.map((h, i) => childObserver(h, labels, OBSERVED_HISTOGRAMS[i]!.scale));
  }

  /** Adds `delta` to a counter. Called by the DB and the WAL. */
  counter(name: WalCounter | DBCounter, delta: number): void {
    const slot = COUNTER_SLOT[name];
    if (slot !== undefined) this.#counts[slot]! += delta;
  }

  /** Observes a duration (ms) or a size. Called by the DB and the WAL. */
  histogram(name: WalHistogram | DBHistogram, value: number): void {
    const slot = HISTOGRAM_SLOT[name];
    if (slot !== undefined) this.#observers[slot]!(value);
  }

  /** Counts the WAL's `failed` events; the others are not metrics. Called by the DB and the WAL. */
  event(event: WalEvent | DBEvent): void {
    if (event.type === 'failed') this.#counts[WAL_FAILURES]! += 1;
  }

  /**
   * Reads `source.stats()` at every scrape from now on, for the values that are state rather
   * than events: WAL segments, memtable bytes, frozen memtables, tables and bytes per level,
   * block cache hits, misses and bytes. `source` is a `DB`, a `Wal` or `db.wal` (a WAL only has
   * segments). Returns the function that stops tracking it: call it when you close the handle
   * (until then a closed handle reports its last state, and the meter holds on to it). Tracking
   * the same source twice tracks it once.
   */
  track(source: StatsSource): () => void {
    if (this.#unregistered) throw new ClosedError('the PrometheusMeter');
    if (typeof source !== 'object' || source === null || typeof source.stats !== 'function') {
      throw new TypeError('track() takes an object with a stats() method: a DB, a Wal or db.wal');
    }
    if (!this.#sources.has(source)) {
      this.#sources.set(source, { last: read(source.stats()) });
      this.#cached = undefined;
    }
    return () => this.#untrack(source);
  }

  /**
   * Removes this meter's series from the registry (and the metrics themselves when no other meter
   * shares them), and stops tracking. Counters and histograms reported afterwards go nowhere.
   * Idempotent.
   */
  unregister(): void {
    if (this.#unregistered) return;
    this.#unregistered = true;
    this.#observers = this.#observers.map(() => noop);
    this.#sources.clear();
    this.#family.remove(this.#member);
  }

  #untrack(source: StatsSource): void {
    const entry = this.#sources.get(source);
    if (entry === undefined) return;
    const last = readOr(source, entry.last);
    this.#retiredHits += last.blockCacheHits;
    this.#retiredMisses += last.blockCacheMisses;
    this.#sources.delete(source);
    this.#cached = undefined;
  }

  /** The tracked sources' stats summed, read once per scrape. */
  #sample(): Sample {
    if (this.#cached !== undefined) return this.#cached;
    const total: Sample = {
      walSegments: 0,
      memtableBytes: 0,
      frozenMemtables: 0,
      levelTables: [],
      levelBytes: [],
      blockCacheHits: this.#retiredHits,
      blockCacheMisses: this.#retiredMisses,
      blockCacheBytes: 0,
    };
    for (const [source, entry] of this.#sources) {
      const s = readOr(source, entry.last);
      entry.last = s;
      total.walSegments += s.walSegments;
      total.memtableBytes += s.memtableBytes;
      total.frozenMemtables += s.frozenMemtables;
      addInto(total.levelTables, s.levelTables);
      addInto(total.levelBytes, s.levelBytes);
      total.blockCacheHits += s.blockCacheHits;
      total.blockCacheMisses += s.blockCacheMisses;
      total.blockCacheBytes += s.blockCacheBytes;
    }
    // Every collect of one scrape runs in the same turn (prom-client calls them all before awaiting):
    // they share this sample, and the next scrape reads afresh.
    this.#cached = total;
    queueMicrotask(() => {
      this.#cached = undefined;
    });
    return total;
  }
}

function checkLabels(labels: unknown): Record<string, string> {
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) {
    throw new InvalidConfigError('labels', 'expected an object of label names to string values');
  }
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(labels)) {
    if (!LABEL_NAME.test(name) || name.startsWith('__')) {
      throw new InvalidConfigError(
        'labels',
        `${JSON.stringify(name)} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)`,
      );
    }
    if (name === 'level' || name === 'le')
      throw new InvalidConfigError('labels', `the label name ${name} is taken by sediment's own metrics`);
    if (typeof value !== 'string') throw new InvalidConfigError('labels', `the value of ${name} must be a string`);
    out[name] = value;
  }
  return Object.freeze(out);
}

/** The observe function of `h`'s child for `labels`, scaling sediment's unit (ms) to the metric's (s). */
function childObserver(h: Histogram<string>, labels: Readonly<Record<string, string>>, scale: number): (value: number) => void {
  const child = h.labels({ ...labels });
  if (Object.keys(labels).length > 0) h.zero({ ...labels }); // the series exist, with count 0, before the first observation
  return scale === 1 ? (v) => child.observe(v) : (v) => child.observe(v * scale);
}

/** What one source's stats() say, or `fallback` if stats() throws. */
function readOr(source: StatsSource, fallback: Sample): Sample {
  try {
    return read(source.stats());
  } catch {
    return fallback;
  }
}

/** The values of a DB's or a WAL's stats() that the meter reports. */
function read(stats: DBStats | WalStats): Sample {
  if ('levels' in stats) {
    return {
      walSegments: stats.wal.segments,
      memtableBytes: stats.memtable.bytes,
      frozenMemtables: stats.frozenMemtables,
      levelTables: stats.levels.map((l) => l.tables),
      levelBytes: stats.levels.map((l) => l.bytes),
      blockCacheHits: stats.blockCache.hits,
      blockCacheMisses: stats.blockCache.misses,
      blockCacheBytes: stats.blockCache.usedBytes,
    };
  }
  return {
    walSegments: stats.segments,
    memtableBytes: 0,
    frozenMemtables: 0,
    levelTables: [],
    levelBytes: [],
    blockCacheHits: 0,
    blockCacheMisses: 0,
    blockCacheBytes: 0,
  };
}

function addInto(into: number[], values: readonly number[]): void {
  values.forEach((v, i) => {
    into[i] = (into[i] ?? 0) + v;
  });
}
