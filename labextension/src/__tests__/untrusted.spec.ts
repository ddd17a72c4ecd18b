/// <reference types="node" />
/**
 * Untrusted text in the labextension: session names and states arrive from the kernel and are shown
 * in the status bar. They must reach the page as text (textContent), never be parsed as HTML.
 */
import * as fs from 'fs';
import * as path from 'path';

import { describeStatuses, isValidName, sanitizeStatuses } from '../records';

const PAYLOADS = [
  '<img src=x onerror="window.__pwned=1">',
  '<script>window.__pwned=1</script>',
  '"><svg onload=window.__pwned=1>',
  '<a href="javascript:window.__pwned=1">x</a>',
  '[x](javascript:alert(1)) <b id=lnb-pwn-marker>B</b>'
];

/** Every way a string can become markup in the DOM. */
const HTML_SINKS = new RegExp(
  [
    'innerHTML',
    'outerHTML',
    'insertAdjacentHTML',
    'document\\.write',
    'createContextualFragment',
    'DOMParser',
    'srcdoc',
    'dangerouslySetInnerHTML',
    'new Function',
    'eval\\('
  ].join('|')
);

function sourceFiles(): string[] {
  const dir = path.join(__dirname, '..');
  return fs
    .readdirSync(dir)
    .filter(name => name.endsWith('.ts'))
    .map(name => path.join(dir, name));
}

function code(file: string): string {
  // Comments may name the sinks (to forbid them); only code counts.
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(line => !/^\s*(\/\/|\*|\/\*)/.test(line))
    .join('\n');
}

describe('untrusted text in the status bar', () => {
  it('keeps a hostile state as literal text, for textContent to show', () => {
    const now = Date.UTC(2026, 0, 1);
    for (const payload of PAYLOADS) {
      const statuses = sanitizeStatuses({
        main: { state: payload, go_away_deadline: null, backend: payload, model: payload }
      });
      expect(statuses.main.state).toBe(payload);
      // Not escaped here: escaping would show "&lt;" to the user; the DOM write is textContent.
      expect(describeStatuses(statuses, now)).toBe(`Live main: ${payload}`);
    }
  });

  it('drops session names that are not plain identifiers', () => {
    for (const payload of PAYLOADS) {
      expect(isValidName(payload)).toBe(false);
      expect(sanitizeStatuses({ [payload]: { state: 'active', go_away_deadline: null } })).toEqual({});
    }
  });

  it('writes the status bar with textContent', () => {
    const index = code(path.join(__dirname, '..', 'index.ts'));
    expect(index).toMatch(/this\.node\.textContent = describeStatuses\(/);
  });

  it('has no HTML sink anywhere in the extension sources', () => {
    const files = sourceFiles();
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const file of files) {
      expect([path.basename(file), code(file).match(HTML_SINKS)?.[0] ?? null]).toEqual([path.basename(file), null]);
    }
  });
});
