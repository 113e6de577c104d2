/**
 * Observability: the WAL reports counters, histograms and events to a {@link Meter}. The default
 * meter does nothing; plug in one that forwards to Prometheus, OpenTelemetry or a log.
 *
 * Meters are called synchronously on the WAL's own path, so they must be cheap and must not
 * throw (a throwing meter is caught and ignored).
 *
 * @module
 */
import type { Position } from './position.js';

/** Counter names the WAL increments. */
export type WalCounter =
  /** Records appended (each record of a batch counts). */
  | 'wal.records'
  /** Bytes appended (frames, headers included). */
  | 'wal.bytes'
  /** write(2) calls issued for appends: fewer than records when appends coalesce. */
  | 'wal.writes'
  /** fdatasync calls completed on segments. */
  | 'wal.fsyncs';

/** Histogram names the WAL observes. */
export type WalHistogram =
  /** Duration of each segment fdatasync, in milliseconds. */
  | 'wal.fsync_ms'
  /** Records per coalesced write: the size of each group commit. */
  | 'wal.group_records';

/** Notable things that happened to the log. */
export type WalEvent =
  | { type: 'segment-roll'; from: number; to: number }
  | { type: 'fsync'; segmentId: number; durationMs: number; bytes: number }
  | { type: 'corruption-truncated'; segmentId: number; offset: number; bytes: number; reason: string }
  | { type: 'quarantined'; file: string; segmentId: number; offset: number; bytes: number; reason: string }
  | { type: 'segments-deleted'; segmentIds: number[]; before: Position }
  | { type: 'failed'; error: Error };

/** Receives the WAL's measurements. */
export interface Meter {
  counter(name: WalCounter, delta: number): void;
  histogram(name: WalHistogram, value: number): void;
  event(event: WalEvent): void;
}

/** A meter that records nothing: the default. */
export const noopMeter: Meter = {
  counter() {},
  histogram() {},
  event() {},
};

/** Wraps a user meter so that a throwing meter cannot break the log. */
export function safeMeter(meter: Meter): Meter {
  if (meter === noopMeter) return meter;
  return {
    counter(name, delta) {
      try {
        meter.counter(name, delta);
      } catch {
        /* a meter must not break the log */
      }
    },
    histogram(name, value) {
      try {
        meter.histogram(name, value);
      } catch {
        /* a meter must not break the log */
      }
    },
    event(event) {
      try {
        meter.event(event);
      } catch {
        /* a meter must not break the log */
      }
    },
  };
}
