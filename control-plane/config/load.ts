// Reading a config dir into the mesh model: YAML (several documents per file),
// schema validation, conversion and cross-reference checks, every error with its
// file:line:column. All-or-nothing: callers apply `model` only when `errors` is
// empty; otherwise the model is partial and must be ignored.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import YAML, { LineCounter } from 'yaml';
import { emptyModel, type MeshModel } from '../model/types.ts';
import { checkModel } from './checks.ts';
import { convertDocument, type ConvertContext, type Reference, type RegexUse } from './convert.ts';
import { KINDS } from './schemas.ts';

export interface ConfigError {
  /** Relative to the config dir. */
  file: string;
  line: number;
  column?: number;
  message: string;
}

export interface LoadResult {
  model: MeshModel;
  errors: ConfigError[];
  files: string[];
  /** Of the bytes read (names and contents), so a rewrite with the same content is no change. */
  digest?: string;
}

/** Bounds on what one reload reads: a config dir is a handful of small files, and
 *  one huge or hostile file must not take the control plane's memory or time. */
export interface LoadLimits {
  maxFileBytes: number;
  maxDirBytes: number;
}

export const DEFAULT_LIMITS: LoadLimits = {
  maxFileBytes: Number(process.env.TESSERA_CONFIG_MAX_FILE_BYTES ?? 4 * 1024 * 1024),
  maxDirBytes: Number(process.env.TESSERA_CONFIG_MAX_DIR_BYTES ?? 32 * 1024 * 1024),
};

/** YAML aliases are legal and handy; an alias bomb (aliases of aliases, expanding
 *  exponentially) is refused. The yaml library counts alias expansions per document. */
export const MAX_ALIAS_COUNT = 100;

/** Finds the position of a value inside a document, for error messages. */
export type Locate = (at: (string | number)[]) => { line: number; column: number };

const ajv = new Ajv({ allErrors: true, strict: false });
const validators = Object.fromEntries(Object.entries(KINDS).map(([kind, k]) => [kind, ajv.compile(k.schema)]));

export function listConfigFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (entry.name.startsWith('.')) continue;
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (/\.ya?ml$/.test(entry.name)) out.push(full);
    }
  };
  walk(dir);
  return out;
}

/** A load that read nothing, with one error about the whole dir. */
export function emptyResult(dir: string, message: string): LoadResult {
  return { model: emptyModel(), files: [], errors: [{ file: dir, line: 0, message }] };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1).replace(/\.0$/, '')} MiB`;

/** Loads a dir; never throws: a missing or unreadable dir, a file too big to read or
 *  anything the parser chokes on becomes an error with its file (and line when known). */
export function loadConfigDir(dir: string, limits: LoadLimits = DEFAULT_LIMITS): LoadResult {
  const model = emptyModel();
  const errors: ConfigError[] = [];
  const refs: Reference[] = [];
  const regexes: RegexUse[] = [];
  const digest = createHash('sha256');
  let files: string[];
  try {
    files = listConfigFiles(dir).map((f) => path.relative(dir, f));
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return emptyResult(dir, `the config dir cannot be read (${reason}): ${(err as Error).message}`);
  }
  let total = 0;
  for (const file of files) {
    let text: string;
    try {
      const size = fs.statSync(path.join(dir, file)).size;
      if (size > limits.maxFileBytes) {
        errors.push({ file, line: 0, message: `file is ${mib(size)}, over the limit of ${mib(limits.maxFileBytes)} per file (TESSERA_CONFIG_MAX_FILE_BYTES); not read` });
        continue;
      }
      total += size;
      if (total > limits.maxDirBytes) {
        errors.push({ file, line: 0, message: `the config dir holds more than ${mib(limits.maxDirBytes)} of YAML (TESSERA_CONFIG_MAX_DIR_BYTES); not read from this file on` });
        break;
      }
      text = fs.readFileSync(path.join(dir, file), 'utf8');
    } catch (err) {
      errors.push({ file, line: 0, message: `cannot read: ${(err as Error).message}` });
      continue;
    }
    digest.update(file).update('\0').update(text).update('\0');
    try {
      loadFile(file, text, { model, errors, refs, regexes });
    } catch (err) {
      // A parser bug must not take the control plane down; the file is rejected.
      errors.push({ file, line: 0, message: `cannot load: ${(err as Error).message}` });
    }
  }
  checkModel(model, refs, regexes, errors);
  errors.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || (a.column ?? 0) - (b.column ?? 0));
  return { model, errors, files, digest: digest.digest('hex') };
}

interface Sink {
  model: MeshModel;
  errors: ConfigError[];
  refs: Reference[];
  regexes: RegexUse[];
}

function loadFile(file: string, text: string, sink: Sink): void {
  const { errors } = sink;
  const lineCounter = new LineCounter();
  const docs = YAML.parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (!Array.isArray(docs)) return; // an empty file
  for (const doc of docs) {
    const pos = (offset: number) => lineCounter.linePos(offset);
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const { line, col } = pos(e.pos[0]);
        errors.push({ file, line, column: col, message: `YAML: ${e.message.split('\n')[0]}` });
      }
      continue;
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      // The yaml library's words for an alias bomb, with where its first alias is.
      const text = (err as Error).message;
      const bomb = /Excessive alias count/.test(text);
      const unresolved = /Unresolved alias.*: (.*)$/.exec(text)?.[1];
      const alias = firstAlias(doc, bomb ? undefined : unresolved);
      const { line, col } = pos(alias?.range?.[0] ?? doc.range[0]);
      const message = bomb
        ? `YAML: aliases expand beyond the limit of ${MAX_ALIAS_COUNT} (an alias bomb?); first alias here`
        : unresolved
          ? `YAML: alias *${unresolved} names no anchor before it in this document`
          : `YAML: ${text}`;
      errors.push({ file, line, column: col, message });
      continue;
    }
    if (value === null || value === undefined) continue;
    const locate: Locate = (at) => {
      // The closest node that exists: a missing field is reported at its parent.
      for (let n = at.length; n >= 0; n--) {
        const node = doc.getIn(at.slice(0, n), true) as { range?: [number, number] } | undefined;
        if (node && typeof node === 'object' && node.range) {
          const { line, col } = pos(node.range[0]);
          return { line, column: col };
        }
      }
      const { line, col } = pos(doc.range[0]);
      return { line, column: col };
    };
    const error = (at: (string | number)[], message: string) => errors.push({ file, ...locate(at), message });
    validateDocument(value, { file, locate, error, ...sink });
  }
}

function firstAlias(doc: YAML.Document.Parsed, source?: string): { range?: [number, number, number] | null } | undefined {
  let found: { range?: [number, number, number] | null } | undefined;
  YAML.visit(doc, {
    Alias(_key, node) {
      if (source !== undefined && node.source !== source) return undefined;
      found = node;
      return YAML.visit.BREAK;
    },
  });
  return found;
}

function validateDocument(value: unknown, ctx: ConvertContext): void {
  const { error } = ctx;
  if (typeof value !== 'object' || Array.isArray(value)) {
    error([], 'a config document must be a mapping with apiVersion and kind');
    return;
  }
  const { apiVersion, kind } = value as { apiVersion?: unknown; kind?: unknown };
  const known = typeof kind === 'string' ? KINDS[kind] : undefined;
  if (!known || typeof kind !== 'string') {
    error(['kind'], `unknown kind ${JSON.stringify(kind)} (known: ${Object.keys(KINDS).join(', ')})`);
    return;
  }
  if (!known.apiVersions.includes(apiVersion as string)) {
    error(['apiVersion'], `${kind} needs apiVersion ${known.apiVersions.join(' or ')}, not ${JSON.stringify(apiVersion)}`);
    return;
  }
  const validate = validators[kind];
  if (!validate(value)) {
    const name = (value as { metadata?: { name?: string } }).metadata?.name;
    for (const e of dedupe(validate.errors ?? [])) {
      const at = pointer(e);
      error(at, `${kind}${name ? ` ${name}` : ''}: ${describe(e, at)}`);
    }
    return;
  }
  // biome-ignore lint/suspicious/noExplicitAny: the document passed its JSON schema (ajv) above
  convertDocument(kind, value as Record<string, any>, ctx);
}

function pointer(e: ErrorObject): (string | number)[] {
  const parts = e.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const at: (string | number)[] = parts.map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  if (e.keyword === 'additionalProperties') at.push((e.params as { additionalProperty: string }).additionalProperty);
  return at;
}

function describe(e: ErrorObject, at: (string | number)[]): string {
  const field = at.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('').replace(/^\./, '') || '(document)';
  switch (e.keyword) {
    case 'additionalProperties':
      return `unknown field '${field}'`;
    case 'required':
      return `${field === '(document)' ? '' : `${field}: `}missing required field '${(e.params as { missingProperty: string }).missingProperty}'`;
    case 'enum':
      return `${field} must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `${field} must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
    case 'pattern':
      return /h\|m\|s\|ms/.test((e.params as { pattern: string }).pattern)
        ? `${field} is not a duration (examples: 500ms, 2s, 1m, 1h30m)`
        : `${field} is not a valid name (lowercase letters, digits and '-')`;
    default:
      return `${field} ${e.message}`;
  }
}

/** ajv reports an enum mismatch once per branch; one line per place is enough. */
function dedupe(errors: ErrorObject[]): ErrorObject[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = `${e.instancePath}|${e.keyword}|${JSON.stringify(e.params)}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
