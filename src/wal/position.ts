/**
 * Positions in the log: a segment id and a byte offset in that segment's file. A record's
 * position is where its frame starts; positions order records in append order.
 *
 * @module
 */

/** Where a record lives (or the next one will go). Any `{ segmentId, offset }` object will do. */
export interface Position {
  readonly segmentId: number;
  readonly offset: number;
}

/** Orders positions: negative if `a` comes before `b`, 0 if equal, positive if after. */
export function comparePositions(a: Position, b: Position): number {
  return a.segmentId - b.segmentId || a.offset - b.offset;
}

/** Throws `TypeError` unless `p` is a `{ segmentId, offset }` of non-negative safe integers. */
export function assertPosition(p: unknown, what = 'position'): asserts p is Position {
  if (typeof p !== 'object' || p === null) throw new TypeError(`${what} must be a { segmentId, offset } object`);
  const { segmentId, offset } = p as { segmentId?: unknown; offset?: unknown };
  if (!Number.isSafeInteger(segmentId) || (segmentId as number) < 0) {
    throw new TypeError(`${what}.segmentId must be a non-negative integer`);
  }
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) {
    throw new TypeError(`${what}.offset must be a non-negative integer`);
  }
}
