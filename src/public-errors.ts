/**
 * The error classes a caller may catch, as every entry point re-exports them. errors.ts also
 * holds internal helpers (`ioStep`, `errnoOf`): an entry point never re-exports that module
 * directly, only this list.
 *
 * @module
 */
export {
  SedimentError,
  ClosedError,
  LockedError,
  CorruptionError,
  InvalidConfigError,
  IoError,
  DecodeError,
  ReadOnlyError,
  ChangesExpiredError,
  InvalidPositionError,
  UnknownSlotError,
  SlotDroppedError,
  type ErrorCode,
  type CorruptionDetails,
} from './errors.js';
