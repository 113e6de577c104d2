/**
 * The NATS side both processes share: connecting, and making sure the stream exists.
 *
 * @module
 */
import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { connect, type NatsConnection, nanos } from '@nats-io/transport-node';

/** JetStream drops a message whose id it has seen within this window (the server's default). */
export const DUPLICATE_WINDOW_MS = 2 * 60_000;

/** Connects to `servers` (`host:port`, comma-separated), retrying while the server starts. */
export function connectNats(servers: string, name: string): Promise<NatsConnection> {
  return connect({ servers: servers.split(','), name, waitOnFirstConnect: true, maxReconnectAttempts: -1 });
}

/**
 * Creates the stream for `subject` unless it exists: file storage, limits retention (a message
 * stays after the follower acks it, so another follower can start from the beginning), and the
 * duplicate window within which a republished message id is dropped.
 */
export async function ensureStream(jsm: JetStreamManager, stream: string, subject: string): Promise<void> {
  try {
    await jsm.streams.info(stream);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
    await jsm.streams.add({
      name: stream,
      subjects: [subject],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    });
  }
}

export { jetstreamManager };
export type { NatsConnection };
