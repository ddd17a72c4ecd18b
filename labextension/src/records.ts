/**
 * Pure logic of the live_nb labextension: what a stored session record may contain, how stored
 * and incoming records merge, and how the status bar words a session's state.
 *
 * Why pure functions in their own module: the kernel <-> labextension comm carries data from
 * code running in the kernel, and the notebook file it ends up in gets shared. Everything that
 * decides what reaches the file lives here, where jest tests it without a browser.
 */

/** The one place a session record's keys are listed (docs/architecture.md, "Kernel <-> labextension comm"). */
export const RECORD_KEYS = [
  'handle',
  'backend',
  'model',
  'resumable',
  'updated',
  'expires',
  'last_consumed_index'
] as const;

/** What is kept about one named live session in `metadata.live_nb.sessions[NAME]`. */
export interface ISessionRecord {
  handle: string;
  backend: string;
  model: string;
  resumable: boolean;
  /** ISO 8601, when the kernel received this handle. */
  updated: string;
  /** ISO 8601, when the service forgets the handle (2 h Gemini Developer API, 24 h Vertex AI). */
  expires: string;
  last_consumed_index: number | null;
}

export type SessionRecords = { [name: string]: ISessionRecord };

/** Live state of one session, from the kernel's throttled `status` messages. */
export interface ISessionStatus {
  state: string;
  /** time.time() seconds of the GoAway deadline, or null. */
  go_away_deadline: number | null;
  backend: string;
  model: string;
}

export type SessionStatuses = { [name: string]: ISessionStatus };

/** Session names as the magics accept them: short identifiers, nothing that could smuggle markup. */
const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;
/** Handles are opaque service tokens; bound their size so a runaway kernel cannot bloat the file. */
const MAX_STRING = 4096;
/**
 * Shapes of credentials that must never land in a notebook, whatever field they hide in:
 * Google API keys (`AIza` + 35), OAuth access tokens (`ya29.`), and PEM private keys.
 */
const SECRET_PATTERNS = [/AIza[0-9A-Za-z_-]{35}/, /ya29\.[0-9A-Za-z_-]+/, /-----BEGIN [A-Z ]*PRIVATE KEY-----/];

/** Whether `text` looks like a credential (see SECRET_PATTERNS). */
export function looksSecret(text: string): boolean {
  return SECRET_PATTERNS.some(pattern => pattern.test(text));
}

function cleanString(value: unknown): string | null {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_STRING) {
    return null;
  }
  return looksSecret(value) ? null : value;
}

function cleanDate(value: unknown): string | null {
  const text = cleanString(value);
  return text !== null && !Number.isNaN(Date.parse(text)) ? text : null;
}

/** Whether `name` is acceptable as a session name (a key of `metadata.live_nb.sessions`). */
export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME_PATTERN.test(name);
}

/**
 * Keep only the known fields of a record, with their expected types.
 *
 * Anything else the kernel sends (an API key, a token, a URL with a key in it) is dropped, and a
 * record whose handle is missing or looks like a credential is rejected whole.
 *
 * @returns the clean record, or null when no usable handle is left.
 */
export function sanitizeRecord(raw: unknown): ISessionRecord | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return null;
  }
  const input = raw as { [key: string]: unknown };
  const handle = cleanString(input.handle);
  const updated = cleanDate(input.updated);
  if (handle === null || updated === null) {
    return null;
  }
  const index = input.last_consumed_index;
  return {
    handle,
    backend: cleanString(input.backend) ?? 'unknown',
    model: cleanString(input.model) ?? 'unknown',
    resumable: input.resumable === true,
    updated,
    expires: cleanDate(input.expires) ?? updated,
    last_consumed_index: typeof index === 'number' && Number.isInteger(index) && index >= 0 ? index : null
  };
}

/** Sanitise a whole `{NAME: record}` map, dropping bad names and bad records. */
export function sanitizeRecords(raw: unknown): SessionRecords {
  const result: SessionRecords = {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return result;
  }
  for (const [name, value] of Object.entries(raw as { [key: string]: unknown })) {
    const record = sanitizeRecord(value);
    if (isValidName(name) && record !== null) {
      result[name] = record;
    }
  }
  return result;
}

/**
 * Merge incoming records into stored ones: per name, the record updated last wins.
 *
 * Why by time and not "incoming wins": a kernel that resumed from an old handle may echo it back
 * after a newer one was stored by another run; the newer handle is the one that carries the
 * latest context.
 */
export function mergeRecords(stored: SessionRecords, incoming: SessionRecords): SessionRecords {
  const result: SessionRecords = { ...stored };
  for (const [name, record] of Object.entries(incoming)) {
    const current = result[name];
    if (current === undefined || Date.parse(record.updated) >= Date.parse(current.updated)) {
      result[name] = record;
    }
  }
  return result;
}

/** Whether two record maps hold the same records (sanitised records have a fixed key order). */
export function sameRecords(a: SessionRecords, b: SessionRecords): boolean {
  const names = Object.keys(a).sort();
  if (names.join('\n') !== Object.keys(b).sort().join('\n')) {
    return false;
  }
  return names.every(name => JSON.stringify(a[name]) === JSON.stringify(b[name]));
}

/** Remove one named record, or all of them when `name` is null. */
export function forgetRecords(stored: SessionRecords, name: string | null): SessionRecords {
  if (name === null) {
    return {};
  }
  const result: SessionRecords = { ...stored };
  delete result[name];
  return result;
}

/** Whether the service has forgotten this handle at `nowMs` (milliseconds since the epoch). */
export function isExpired(record: ISessionRecord, nowMs: number): boolean {
  return Date.parse(record.expires) <= nowMs;
}

/**
 * Word a countdown to `deadlineSeconds` (time.time() seconds) as `m:ss`, or `h:mm:ss` past an hour.
 *
 * @returns '0:00' once the deadline has passed; '' when there is no deadline.
 */
export function formatCountdown(deadlineSeconds: number | null, nowMs: number): string {
  if (deadlineSeconds === null || !Number.isFinite(deadlineSeconds)) {
    return '';
  }
  const left = Math.max(0, Math.ceil(deadlineSeconds - nowMs / 1000));
  const hours = Math.floor(left / 3600);
  const minutes = Math.floor((left % 3600) / 60);
  const seconds = left % 60;
  const ss = String(seconds).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${ss}` : `${minutes}:${ss}`;
}

/** One status-bar phrase per session, e.g. `main: active`, `main: going_away (GoAway 0:42)`. */
export function describeStatuses(statuses: SessionStatuses, nowMs: number): string {
  const parts = Object.keys(statuses)
    .sort()
    .map(name => {
      const status = statuses[name];
      const countdown = formatCountdown(status.go_away_deadline, nowMs);
      return countdown ? `${name}: ${status.state} (GoAway ${countdown})` : `${name}: ${status.state}`;
    });
  return parts.length ? `Live ${parts.join(' · ')}` : '';
}

/** Sanitise a `status` message's sessions (it is only shown, never stored, but still typed). */
export function sanitizeStatuses(raw: unknown): SessionStatuses {
  const result: SessionStatuses = {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return result;
  }
  for (const [name, value] of Object.entries(raw as { [key: string]: unknown })) {
    if (!isValidName(name) || typeof value !== 'object' || value === null) {
      continue;
    }
    const input = value as { [key: string]: unknown };
    const deadline = input.go_away_deadline;
    result[name] = {
      state: cleanString(input.state) ?? 'unknown',
      go_away_deadline: typeof deadline === 'number' && Number.isFinite(deadline) ? deadline : null,
      backend: cleanString(input.backend) ?? 'unknown',
      model: cleanString(input.model) ?? 'unknown'
    };
  }
  return result;
}

/** The `live_nb` metadata namespace with `sessions` replaced (other keys kept as they were). */
export function withSessions(namespace: unknown, sessions: SessionRecords): { [key: string]: unknown } {
  const base =
    typeof namespace === 'object' && namespace !== null && !Array.isArray(namespace)
      ? { ...(namespace as { [key: string]: unknown }) }
      : {};
  base.sessions = sessions;
  return base;
}
