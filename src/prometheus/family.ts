/**
 * The prom-client metrics behind every {@link PrometheusMeter} that reports to one registry under
 * one prefix: a "family". prom-client refuses two metrics of one name in a registry, so meters
 * that share a registry and a prefix share one set of metrics, each meter writing its own series,
 * told apart by its constant `labels` (`{ db: 'users' }`). The rules:
 *
 * - the first meter creates and registers the metrics; the others join them;
 * - every meter of a family has the same label names, and no two have the same label values
 *   (two meters with no labels would write the same series): otherwise the joining meter is
 *   refused with an `InvalidConfigError` saying what to change;
 * - a registry that already holds one of the names, not made by a family (the application's own
 *   metric, another copy of sediment), is refused the same way;
 * - the last meter to `unregister()` removes the metrics from the registry.
 *
 * Every value is published at scrape time, in prom-client's `collect`: the fed counters from the
 * meters' accumulators, the scraped values from their tracked sources. Only the histograms are
 * written on the measured path, through children resolved once per meter.
 *
 * @module
 */
import { Counter, Gauge, Histogram, type Registry, type RegistryContentType } from 'prom-client';
import { InvalidConfigError } from '../errors.js';
import { FED_COUNTERS, OBSERVED_HISTOGRAMS, SCRAPED, type Sample, type ScrapedMetric } from './metrics.js';

/** A registry of either content type (Prometheus text or OpenMetrics). */
export type AnyRegistry = Registry<RegistryContentType>;

/** What a family needs of one meter. */
export interface Member {
  /** Constant labels of every series this meter writes. */
  readonly labels: Readonly<Record<string, string>>;
  /** The label values, as one string: unique within the family. */
  readonly key: string;
  /** Accumulated fed counters, in `FED_COUNTERS` order, in sediment's units (ms, not s). */
  readonly counts: Float64Array;
  /** What the meter's tracked sources' stats() say now (cached for the scrape). */
  sample(): Sample;
}

type Metric = Counter<string> | Gauge<string> | Histogram<string>;

/** The metrics shared by the meters of one registry and prefix. */
export class Family {
  readonly labelNames: readonly string[];
  readonly members = new Map<string, Member>();
  /** Histograms, in `OBSERVED_HISTOGRAMS` order: meters take their children from them. */
  readonly histograms: Histogram<string>[];
  readonly #registry: AnyRegistry;
  readonly #prefix: string;
  /** Every metric, by the name it was registered under. */
  readonly #metrics = new Map<string, Metric>();
  /** Levels each member last published, per per-level metric: the ones beyond are removed. */
  readonly #levels = new Map<string, number>();

  constructor(registry: AnyRegistry, prefix: string, labelNames: readonly string[]) {
    this.#registry = registry;
    this.#prefix = prefix;
    this.labelNames = labelNames;
    for (const name of this.names()) {
      if (registry.getSingleMetric(name) !== undefined) {
        throw new InvalidConfigError(
          'registry',
          `it already has a metric named ${name} that no PrometheusMeter made (your own, or another copy of sediment's): pass another prefix`,
        );
      }
    }
    const registers = [registry];
    const members = this.members;
    FED_COUNTERS.forEach((def, i) => {
      this.#add(
        prefix + def.name,
        new Counter({
          name: prefix + def.name,
          help: def.help,
          labelNames: [...labelNames],
          registers,
          collect(this: Counter<string>) {
            for (const m of members.values()) setCounter(this, m.labels, m.counts[i]! * def.scale);
          },
        }),
      );
    });
    this.histograms = OBSERVED_HISTOGRAMS.map((def) =>
      this.#add(
        prefix + def.name,
        new Histogram({ name: prefix + def.name, help: def.help, labelNames: [...labelNames], buckets: def.buckets, registers }),
      ),
    );
    for (const def of SCRAPED) this.#add(prefix + def.name, this.#scraped(def, registers));
  }

  /** The full names of the family's metrics. */
  names(): string[] {
    return [...FED_COUNTERS, ...OBSERVED_HISTOGRAMS, ...SCRAPED].map((d) => this.#prefix + d.name);
  }

  /** Whether the registry still holds this family's metrics (not cleared by `registry.clear()`). */
  isRegistered(): boolean {
    for (const [name, metric] of this.#metrics) if (this.#registry.getSingleMetric(name) !== metric) return false;
    return true;
  }

  /** Removes every series of `m`; the last member out removes the metrics from the registry. */
  remove(m: Member): void {
    this.members.delete(m.key);
    for (const [name, metric] of this.#metrics) {
      const levels = this.#levels.get(`${name}\0${m.key}`);
      if (levels !== undefined) {
        for (let l = 0; l < levels; l++) metric.remove({ ...m.labels, level: String(l) });
        this.#levels.delete(`${name}\0${m.key}`);
      } else if (this.labelNames.length > 0) {
        metric.remove(m.labels);
      }
    }
    if (this.members.size === 0) {
      for (const [name, metric] of this.#metrics) {
        if (this.#registry.getSingleMetric(name) === metric) this.#registry.removeSingleMetric(name);
      }
    }
  }

  #add<M extends Metric>(name: string, metric: M): M {
    // Kept under the name it was registered under: OpenMetrics registries rename counters in place (dropping `_total`).
    this.#metrics.set(name, metric);
    return metric;
  }

  #scraped(def: ScrapedMetric, registers: AnyRegistry[]): Counter<string> | Gauge<string> {
    const members = this.members;
    const name = this.#prefix + def.name;
    if (def.perLevel) {
      const levels = this.#levels;
      return new Gauge({
        name,
        help: def.help,
        labelNames: [...this.labelNames, 'level'],
        registers,
        collect(this: Gauge<string>) {
          for (const m of members.values()) {
            const values = def.read(m.sample());
            const key = `${name}\0${m.key}`;
            const before = levels.get(key) ?? 0;
            values.forEach((v, l) => {
              this.set({ ...m.labels, level: String(l) }, v);
            });
            for (let l = values.length; l < before; l++) this.remove({ ...m.labels, level: String(l) });
            levels.set(key, values.length);
          }
        },
      });
    }
    if (def.type === 'counter') {
      return new Counter({
        name,
        help: def.help,
        labelNames: [...this.labelNames],
        registers,
        collect(this: Counter<string>) {
          for (const m of members.values()) setCounter(this, m.labels, def.read(m.sample()));
        },
      });
    }
    return new Gauge({
      name,
      help: def.help,
      labelNames: [...this.labelNames],
      registers,
      collect(this: Gauge<string>) {
        for (const m of members.values()) this.set(m.labels, def.read(m.sample()));
      },
    });
  }
}

/** Publishes a counter's value (prom-client counters have no `set`: remove, then add it up from zero). */
function setCounter(counter: Counter<string>, labels: Readonly<Record<string, string>>, value: number): void {
  counter.remove(labels);
  counter.inc(labels, Number.isFinite(value) && value >= 0 ? value : 0);
}

const families = new WeakMap<AnyRegistry, Map<string, Family>>();

/**
 * Adds `member` to the family of `registry` and `prefix`, creating it if there is none, or
 * refuses it (see the rules above).
 */
export function join(registry: AnyRegistry, prefix: string, labelNames: readonly string[], member: Member): Family {
  let byPrefix = families.get(registry);
  if (byPrefix === undefined) {
    byPrefix = new Map<string, Family>();
    families.set(registry, byPrefix);
  }
  let family = byPrefix.get(prefix);
  if (family !== undefined && (family.members.size === 0 || !family.isRegistered())) {
    byPrefix.delete(prefix); // emptied, or the registry was cleared: start afresh
    family = undefined;
  }
  if (family === undefined) {
    family = new Family(registry, prefix, labelNames);
    byPrefix.set(prefix, family);
  } else {
    const names = (l: readonly string[]): string => (l.length === 0 ? 'no labels' : `labels ${l.join(', ')}`);
    if (family.labelNames.join('\0') !== labelNames.join('\0')) {
      throw new InvalidConfigError(
        'labels',
        `another PrometheusMeter reports to this registry with prefix '${prefix}' and ${names(family.labelNames)}; ` +
          `meters sharing a registry and a prefix need the same label names with distinct values (e.g. { db: 'users' } and { db: 'orders' }), or distinct prefixes`,
      );
    }
    if (family.members.has(member.key)) {
      throw new InvalidConfigError(
        'labels',
        labelNames.length === 0
          ? `another PrometheusMeter already reports to this registry with prefix '${prefix}' and no labels; give each meter its own labels (e.g. { db: 'users' }) or prefix, or unregister() the other first`
          : `another PrometheusMeter already reports to this registry with prefix '${prefix}' and the same labels ${JSON.stringify(member.labels)}; give each meter distinct label values, or unregister() the other first`,
      );
    }
  }
  family.members.set(member.key, member);
  return family;
}
