/**
 * A small YAML writer for the manifests vipd generates, so the output is byte-for-byte stable
 * (the checked-in copies are compared with it) and can carry comments, which general dumpers drop.
 *
 * Assumptions: input is plain data (strings, finite numbers, booleans, null, arrays, objects,
 * `Commented`, `Literal`). Strings are written plain only when every YAML 1.1 and 1.2 reader
 * (kubectl's, js-yaml) reads them back as the same string; otherwise JSON-quoted, which is valid
 * YAML. Tests parse every generated document back and compare it with the input.
 */

export type YamlValue = string | number | boolean | null | readonly YamlValue[] | YamlMap | Commented;
export interface YamlMap {
  readonly [key: string]: YamlValue | undefined;
}

/** A value with comment lines written just above its key (in a map) or its dash (in a list). */
export class Commented {
  constructor(
    readonly comment: readonly string[],
    readonly value: YamlValue,
  ) {}
}

export function commented(comment: string | readonly string[], value: YamlValue): Commented {
  return new Commented(typeof comment === 'string' ? [comment] : comment, value);
}

const SPECIAL = /^(true|false|yes|no|on|off|y|n|null|~)$/i;
// C0/C1 controls, and the line breaks of YAML 1.1 (NEL, LS, PS), which JSON leaves unescaped.
const UNSAFE_CHARS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\ufeff]/g;

function quoted(s: string): string {
  return JSON.stringify(s).replace(UNSAFE_CHARS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function plainSafe(s: string): boolean {
  if (s === '' || SPECIAL.test(s)) return false;
  // Digits first could be a number, a timestamp or a YAML 1.1 sexagesimal; quote them all.
  if (/^[-+.]?\d/.test(s) || /^\.(inf|nan)$/i.test(s)) return false;
  if (!/^[A-Za-z_./][A-Za-z0-9_./:=@+-]*$/.test(s)) return false;
  return !s.endsWith(':');
}

function scalar(v: string | number | boolean | null): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`yaml: cannot write the number ${v}`);
    return String(v);
  }
  return plainSafe(v) ? v : quoted(v);
}

function isScalar(v: YamlValue): v is string | number | boolean | null {
  return v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

/** Multi-line strings become `|` blocks when that round-trips exactly. */
function literalLines(s: string): string[] | undefined {
  if (!s.includes('\n') || new RegExp(UNSAFE_CHARS.source).test(s)) return undefined;
  const body = s.endsWith('\n') ? s.slice(0, -1) : s;
  if (body.endsWith('\n')) return undefined; // several trailing newlines need `|+`; not used
  const lines = body.split('\n');
  if (lines.some((l) => /\s$/.test(l) || /[\t\r]/.test(l))) return undefined;
  if (lines[0] === '' || /^\s/.test(lines[0] ?? '')) return undefined;
  return [s.endsWith('\n') ? '|' : '|-', ...lines];
}

function key(k: string): string {
  return plainSafe(k) ? k : quoted(k);
}

function unwrap(v: YamlValue): { comment: readonly string[]; value: YamlValue } {
  const comment: string[] = [];
  while (v instanceof Commented) {
    comment.push(...v.comment);
    v = v.value;
  }
  return { comment, value: v };
}

function commentLines(comment: readonly string[], indent: string): string[] {
  return comment.map((c) => (c === '' ? `${indent}#` : `${indent}# ${c}`));
}

/** Lines for `value` placed after `head` (a "key:" or "-" already indented). */
function emitAfter(head: string, value: YamlValue, indent: string, out: string[]): void {
  if (isScalar(value)) {
    const lit = typeof value === 'string' ? literalLines(value) : undefined;
    if (lit) {
      out.push(`${head} ${lit[0]}`);
      for (const l of lit.slice(1)) out.push(l === '' ? '' : `${indent}  ${l}`);
    } else {
      out.push(`${head} ${scalar(value)}`);
    }
    return;
  }
  if (Array.isArray(value)) {
    const list = value as readonly YamlValue[];
    if (list.length === 0) {
      out.push(`${head} []`);
      return;
    }
    if (list.every((x) => isScalar(x) && !(typeof x === 'string' && x.includes('\n')))) {
      // Short lists of scalars read best inline; JSON quoting keeps them unambiguous.
      out.push(`${head} [${list.map((x) => (typeof x === 'string' ? quoted(x) : scalar(x as number | boolean | null))).join(', ')}]`);
      return;
    }
    out.push(head);
    emitList(list, `${indent}  `, out);
    return;
  }
  const map = value as YamlMap;
  if (Object.values(map).every((v) => v === undefined)) {
    out.push(`${head} {}`);
    return;
  }
  out.push(head);
  emitMap(map, `${indent}  `, out);
}

function emitMap(map: YamlMap, indent: string, out: string[]): void {
  for (const [k, raw] of Object.entries(map)) {
    if (raw === undefined) continue;
    const { comment, value } = unwrap(raw);
    out.push(...commentLines(comment, indent));
    emitAfter(`${indent}${key(k)}:`, value, indent, out);
  }
}

function emitList(list: readonly YamlValue[], indent: string, out: string[]): void {
  for (const raw of list) {
    const { comment, value } = unwrap(raw);
    out.push(...commentLines(comment, indent));
    if (!isScalar(value) && !Array.isArray(value) && Object.values(value as YamlMap).some((v) => v !== undefined)) {
      // "- first: x" then the other keys under it, two spaces in.
      const lines: string[] = [];
      emitMap(value as YamlMap, `${indent}  `, lines);
      const first = lines.findIndex((l) => !l.trimStart().startsWith('#'));
      // Comments of the first key go above the dash.
      for (const l of lines.slice(0, first)) out.push(l.slice(2));
      out.push(`${indent}- ${lines[first]!.slice(indent.length + 2)}`);
      out.push(...lines.slice(first + 1));
      continue;
    }
    emitAfter(`${indent}-`, value, indent, out);
  }
}

export interface YamlDocument {
  /** Comment lines above the document. */
  comment?: readonly string[];
  body: YamlMap;
}

/** Documents separated by `---`, each ending in a newline. */
export function toYaml(docs: readonly YamlDocument[]): string {
  const out: string[] = [];
  docs.forEach((d, i) => {
    if (i > 0) out.push('---');
    out.push(...commentLines(d.comment ?? [], ''));
    if (Object.values(d.body).every((v) => v === undefined)) out.push('{}');
    else emitMap(d.body, '', out);
  });
  return `${out.join('\n')}\n`;
}
