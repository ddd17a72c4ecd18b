import {
  describeStatuses,
  forgetRecords,
  formatCountdown,
  isExpired,
  isValidName,
  ISessionRecord,
  looksSecret,
  mergeRecords,
  RECORD_KEYS,
  sameRecords,
  sanitizeRecord,
  sanitizeRecords,
  sanitizeStatuses,
  withSessions
} from '../records';

const KEY = 'AIza' + 'SyD-0123456789abcdefghijklmnopqrstu'; // the shape of a Google API key (39 chars)

function record(overrides: Partial<ISessionRecord> = {}): ISessionRecord {
  return {
    handle: 'h-1',
    backend: 'emulator',
    model: 'gemini-live-2.5-flash',
    resumable: true,
    updated: '2026-11-21T10:00:00Z',
    expires: '2026-11-21T12:00:00Z',
    last_consumed_index: 3,
    ...overrides
  };
}

describe('sanitizeRecord', () => {
  it('keeps exactly the contract keys', () => {
    const clean = sanitizeRecord({ ...record(), api_key: KEY, token: 'ya29.abc', url: 'wss://x?key=1' });
    expect(clean).toEqual(record());
    expect(Object.keys(clean!).sort()).toEqual([...RECORD_KEYS].sort());
  });

  it('never lets a key through, whatever field it hides in', () => {
    expect(sanitizeRecord(record({ handle: KEY }))).toBeNull();
    expect(sanitizeRecord(record({ handle: `prefix-${KEY}` }))).toBeNull();
    const clean = sanitizeRecord(record({ model: KEY, backend: 'ya29.a0AfH6SM' }));
    expect(clean).not.toBeNull();
    expect(JSON.stringify(clean)).not.toContain('AIza');
    expect(JSON.stringify(clean)).not.toContain('ya29.');
    expect(clean!.model).toBe('unknown');
  });

  it('rejects records without a usable handle or update time', () => {
    expect(sanitizeRecord(null)).toBeNull();
    expect(sanitizeRecord([record()])).toBeNull();
    expect(sanitizeRecord('h-1')).toBeNull();
    expect(sanitizeRecord({ ...record(), handle: '' })).toBeNull();
    expect(sanitizeRecord({ ...record(), handle: 42 })).toBeNull();
    expect(sanitizeRecord({ ...record(), handle: 'x'.repeat(5000) })).toBeNull();
    expect(sanitizeRecord({ ...record(), updated: 'yesterday' })).toBeNull();
  });

  it('coerces loose fields to safe defaults', () => {
    const clean = sanitizeRecord({
      handle: 'h',
      updated: '2026-11-21T10:00:00Z',
      resumable: 'yes',
      last_consumed_index: -1,
      expires: 'never'
    });
    expect(clean).toEqual({
      handle: 'h',
      backend: 'unknown',
      model: 'unknown',
      resumable: false,
      updated: '2026-11-21T10:00:00Z',
      expires: '2026-11-21T10:00:00Z',
      last_consumed_index: null
    });
    expect(sanitizeRecord(record({ last_consumed_index: 2.5 }))!.last_consumed_index).toBeNull();
  });
});

describe('sanitizeRecords', () => {
  it('drops bad names and bad records but keeps the good ones', () => {
    const clean = sanitizeRecords({
      main: record(),
      '<img src=x>': record(),
      '': record(),
      broken: { handle: 1 },
      other: record({ handle: 'h-2' })
    });
    expect(Object.keys(clean).sort()).toEqual(['main', 'other']);
    expect(sanitizeRecords(undefined)).toEqual({});
    expect(sanitizeRecords([record()])).toEqual({});
  });

  it('accepts the names the magics accept', () => {
    expect(isValidName('main')).toBe(true);
    expect(isValidName('tutor_2.v-1')).toBe(true);
    expect(isValidName('2main')).toBe(false);
    expect(isValidName('a'.repeat(65))).toBe(false);
    expect(isValidName(null)).toBe(false);
  });
});

describe('mergeRecords and forgetRecords', () => {
  it('keeps the record updated last, per name', () => {
    const stored = { main: record({ handle: 'new', updated: '2026-11-21T11:00:00Z' }), b: record() };
    const incoming = { main: record({ handle: 'old', updated: '2026-11-21T10:00:00Z' }), c: record() };
    const merged = mergeRecords(stored, incoming);
    expect(merged.main.handle).toBe('new');
    expect(Object.keys(merged).sort()).toEqual(['b', 'c', 'main']);
    const newer = mergeRecords(merged, { main: record({ handle: 'newer', updated: '2026-11-21T11:00:01Z' }) });
    expect(newer.main.handle).toBe('newer');
    expect(stored.main.handle).toBe('new'); // inputs untouched
  });

  it('tells unchanged records apart from changed ones', () => {
    expect(sameRecords({}, {})).toBe(true);
    expect(sameRecords({ a: record() }, sanitizeRecords({ a: { ...record(), extra: 1 } }))).toBe(true);
    expect(sameRecords({ a: record() }, { a: record({ handle: 'h-2' }) })).toBe(false);
    expect(sameRecords({ a: record() }, { b: record() })).toBe(false);
    expect(sameRecords({ a: record() }, {})).toBe(false);
  });

  it('forgets one name or all', () => {
    const stored = { a: record(), b: record() };
    expect(Object.keys(forgetRecords(stored, 'a'))).toEqual(['b']);
    expect(forgetRecords(stored, null)).toEqual({});
    expect(Object.keys(stored)).toEqual(['a', 'b']);
  });
});

describe('time', () => {
  it('knows when a handle has expired', () => {
    const now = Date.parse('2026-11-21T11:59:59Z');
    expect(isExpired(record(), now)).toBe(false);
    expect(isExpired(record(), now + 1000)).toBe(true);
  });

  it('formats countdowns as m:ss or h:mm:ss', () => {
    const now = 1_000_000_000_000;
    expect(formatCountdown(null, now)).toBe('');
    expect(formatCountdown(now / 1000 + 42, now)).toBe('0:42');
    expect(formatCountdown(now / 1000 + 65.2, now)).toBe('1:06');
    expect(formatCountdown(now / 1000 + 3600 + 61, now)).toBe('1:01:01');
    expect(formatCountdown(now / 1000 - 5, now)).toBe('0:00');
    expect(formatCountdown(Number.NaN, now)).toBe('');
  });

  it('describes each session for the status bar', () => {
    const now = 1_000_000_000_000;
    const text = describeStatuses(
      sanitizeStatuses({
        tutor: { state: 'going_away', go_away_deadline: now / 1000 + 42, backend: 'emulator', model: 'm' },
        main: { state: 'active', go_away_deadline: null, backend: 'emulator', model: 'm' },
        'bad name': { state: 'active' }
      }),
      now
    );
    expect(text).toBe('Live main: active · tutor: going_away (GoAway 0:42)');
    expect(describeStatuses({}, now)).toBe('');
  });
});

describe('helpers', () => {
  it('spots credential shapes', () => {
    expect(looksSecret(KEY)).toBe(true);
    expect(looksSecret('ya29.a0AfH6SMB')).toBe(true);
    expect(looksSecret('-----BEGIN RSA PRIVATE KEY-----')).toBe(true);
    expect(looksSecret('emu-7f3a9c-handle')).toBe(false);
  });

  it('replaces only the sessions of the live_nb namespace', () => {
    expect(withSessions({ other: 1, sessions: { x: 1 } }, {})).toEqual({ other: 1, sessions: {} });
    expect(withSessions(undefined, { main: record() })).toEqual({ sessions: { main: record() } });
    expect(withSessions([1], {})).toEqual({ sessions: {} });
  });
});
