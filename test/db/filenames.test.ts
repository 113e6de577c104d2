/**
 * The DB directory's file names (src/db/filenames.ts): each builder's output parses back to
 * what built it, and near misses of every name are refused.
 */
import { describe, expect, it } from 'vitest';
import {
  CURRENT_FILE,
  CURRENT_TMP_FILE,
  LOCK_FILE,
  OPTIONS_FILE,
  OPTIONS_TMP_FILE,
  QUARANTINE_DIR,
  WAL_DIR,
  fileNumbers,
  lockSocketFileName,
  manifestFileName,
  parseFileName,
  quarantinedFileName,
  tableFileName,
} from '../../src/db/filenames.js';

describe('builders', () => {
  it('pad numbers to six digits, and no further', () => {
    expect(tableFileName(1)).toBe('000001.sst');
    expect(tableFileName(123456)).toBe('123456.sst');
    expect(tableFileName(1234567)).toBe('1234567.sst');
    expect(manifestFileName(7)).toBe('MANIFEST-000007');
    expect(manifestFileName(12345678)).toBe('MANIFEST-12345678');
    expect(lockSocketFileName('0123456789abcdef')).toBe('LOCK-0123456789abcdef.sock');
    expect(quarantinedFileName('1700000000000-0a1b2c3d', '000004.sst')).toBe('1700000000000-0a1b2c3d-000004.sst');
  });

  it('fixed names are what FORMAT.md lists', () => {
    expect([CURRENT_FILE, CURRENT_TMP_FILE, OPTIONS_FILE, OPTIONS_TMP_FILE, LOCK_FILE, WAL_DIR, QUARANTINE_DIR]).toEqual([
      'CURRENT',
      'CURRENT.tmp',
      'OPTIONS',
      'OPTIONS.tmp',
      'LOCK',
      'wal',
      'quarantine',
    ]);
  });
});

describe('parseFileName', () => {
  it('round-trips table and manifest numbers, small and large', () => {
    for (const n of [0, 1, 9, 10, 99999, 999999, 1000000, 123456789, Number.MAX_SAFE_INTEGER]) {
      expect(parseFileName(tableFileName(n))).toEqual({ type: 'table', number: n });
      expect(parseFileName(manifestFileName(n))).toEqual({ type: 'manifest', number: n });
    }
  });

  it('names every fixed file', () => {
    expect(parseFileName('CURRENT')).toEqual({ type: 'current' });
    expect(parseFileName('CURRENT.tmp')).toEqual({ type: 'currentTmp' });
    expect(parseFileName('OPTIONS')).toEqual({ type: 'options' });
    expect(parseFileName('OPTIONS.tmp')).toEqual({ type: 'optionsTmp' });
    expect(parseFileName('IDENTITY')).toEqual({ type: 'identity' });
    expect(parseFileName('IDENTITY.tmp')).toEqual({ type: 'identityTmp' });
    expect(parseFileName('SLOTS')).toEqual({ type: 'slots' });
    expect(parseFileName('SLOTS.tmp')).toEqual({ type: 'slotsTmp' });
    expect(parseFileName('LOCK')).toEqual({ type: 'lock' });
    expect(parseFileName('LOCK-0123456789abcdef.sock')).toEqual({ type: 'lockSocket' });
    expect(parseFileName('wal')).toEqual({ type: 'wal' });
    expect(parseFileName('quarantine')).toEqual({ type: 'quarantine' });
  });

  it.each([
    // too few digits, extra leading zeros, signs, spaces, other bases
    '00001.sst',
    '1.sst',
    '0000001.sst',
    '+00001.sst',
    '-00001.sst',
    ' 000001.sst',
    '000001 .sst',
    '0x0001.sst',
    '1e+06.sst',
    '０００００１.sst',
    // suffixes and case
    '000001.sst.tmp',
    '000001.SST',
    '000001.ldb',
    '000001',
    '.sst',
    '000001.sst/',
    // past what a number holds exactly
    '9007199254740992.sst',
    '99999999999999999999.sst',
    'MANIFEST-1',
    'MANIFEST-00001',
    'MANIFEST-0000001',
    'MANIFEST-000001.tmp',
    'manifest-000001',
    'MANIFEST000001',
    'MANIFEST-',
    'MANIFEST-9007199254740992',
    'current',
    'CURRENT.TMP',
    'CURRENT.tmp.tmp',
    'CURRENT ',
    'OPTIONS-000001',
    'options',
    'LOCK.sock',
    'LOCK-0123456789abcde.sock',
    'LOCK-0123456789ABCDEF.sock',
    'LOCK-0123456789abcdef0.sock',
    'WAL',
    'wal/',
    'Quarantine',
    '',
    '.',
    '..',
  ])('refuses %j', (name) => {
    expect(parseFileName(name)).toBeUndefined();
  });

  it('hands out results a caller cannot spoil for the next one', () => {
    const first = parseFileName('CURRENT')!;
    expect(() => Object.assign(first, { type: 'table' })).toThrow(TypeError);
    expect(parseFileName('CURRENT')).toEqual({ type: 'current' });
  });
});

describe('fileNumbers', () => {
  it('picks the numbers of one type, in the order found, and nothing else', () => {
    const names = [
      'CURRENT',
      '000010.sst',
      'MANIFEST-000003',
      '000002.sst',
      '00003.sst',
      '000004.sst.tmp',
      'MANIFEST-000009',
      'wal',
      'OPTIONS.tmp',
    ];
    expect(fileNumbers(names, 'table')).toEqual([10, 2]);
    expect(fileNumbers(names, 'manifest')).toEqual([3, 9]);
    expect(fileNumbers([], 'table')).toEqual([]);
  });
});
