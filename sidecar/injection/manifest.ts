// `tessera inject` over a YAML manifest: the pod mutation applied to every Pod template,
// written back into the YAML document so comments, key order and untouched documents stay.
import fastJsonPatch from 'fast-json-patch';
import { isDeepStrictEqual } from 'node:util';
import YAML, { LineCounter, type Document } from 'yaml';
import { InjectionError, ManifestError } from './errors.ts';
import type { PodTemplate } from './kube-types.ts';
import { injectPodTemplate, type InjectOptions } from './mutate.ts';

/** Where the pod template sits in each kind that has one (apiVersion group, then path). */
const TEMPLATE_PATHS: Record<string, { group: string; path: string[] }> = {
  Pod: { group: '', path: [] },
  Deployment: { group: 'apps', path: ['spec', 'template'] },
  StatefulSet: { group: 'apps', path: ['spec', 'template'] },
  DaemonSet: { group: 'apps', path: ['spec', 'template'] },
  ReplicaSet: { group: 'apps', path: ['spec', 'template'] },
  Job: { group: 'batch', path: ['spec', 'template'] },
  CronJob: { group: 'batch', path: ['spec', 'jobTemplate', 'spec', 'template'] },
};

export interface ManifestOutcome {
  /** The manifest with every injectable template injected. */
  output: string;
  /** One line per pod template: what happened to it. */
  report: string[];
}

export function injectManifest(text: string, file: string, options: InjectOptions & { namespace: string }): ManifestOutcome {
  const lineCounter = new LineCounter();
  const docs = YAML.parseAllDocuments(text, { lineCounter, prettyErrors: false });
  const errors: string[] = [];
  const report: string[] = [];
  const lineOf = (offset: number | undefined) => (offset === undefined ? '?' : String(lineCounter.linePos(offset).line));

  if (!Array.isArray(docs)) {
    // An empty stream parses as an EmptyStream object.
    return { output: text, report };
  }
  for (const doc of docs) {
    for (const e of doc.errors) errors.push(`${file}:${e.linePos?.[0]?.line ?? lineOf(e.pos[0])}: ${e.message}`);
  }
  if (errors.length > 0) throw new ManifestError(errors);

  for (const doc of docs) {
    const object = doc.toJS({ maxAliasCount: 100 }) as unknown;
    for (const { at, value } of podHolders(object, [])) {
      const kind = (value as { kind: string }).kind;
      const meta = (value as { metadata?: { name?: string; namespace?: string } }).metadata ?? {};
      const where = `${kind} ${meta.namespace ?? options.namespace}/${meta.name ?? '?'}`;
      const line = lineOf((doc.getIn(at, true) as YAML.Node | undefined)?.range?.[0] ?? doc.contents?.range?.[0]);
      const templatePath = [...at, ...TEMPLATE_PATHS[kind].path];
      const template = getPath(object, templatePath) as PodTemplate | undefined;
      if (!template || typeof template !== 'object' || !Array.isArray(template.spec?.containers)) {
        errors.push(`${file}:${line}: ${where}: no pod template at ${templatePath.join('.') || '(root)'} with spec.containers`);
        continue;
      }
      let result: ReturnType<typeof injectPodTemplate> | undefined;
      try {
        result = injectPodTemplate(template, { namespace: meta.namespace ?? options.namespace, workloadName: meta.name }, options);
      } catch (err) {
        if (!(err instanceof InjectionError)) throw err;
        for (const p of err.problems) {
          const node = doc.getIn([...templatePath, ...fieldPathSegments(p.path)], true) as YAML.Node | undefined;
          const prefix = templatePath.length ? `${templatePath.join('.')}.` : '';
          errors.push(`${file}:${lineOf(node?.range?.[0]) === '?' ? line : lineOf(node?.range?.[0])}: ${where}: ${prefix}${p.path}: ${p.message}`);
        }
        continue;
      }
      if (!result.injected) {
        report.push(`${where}: unchanged, ${result.reason}`);
        continue;
      }
      applyToDocument(doc, templatePath, template, result.template);
      report.push(`${where}: injected (${result.status.mode} sidecar${result.status.rewrittenProbes.length ? `, ${result.status.rewrittenProbes.length} probes rewritten` : ''})`);
    }
  }
  if (errors.length > 0) throw new ManifestError(errors);
  return { output: stringifyAll(docs), report };
}

/** The objects (at their path) that carry a pod template; a `List` is looked into. */
function podHolders(value: unknown, at: (string | number)[]): { at: (string | number)[]; value: unknown }[] {
  if (!value || typeof value !== 'object') return [];
  const { apiVersion, kind, items } = value as { apiVersion?: unknown; kind?: unknown; items?: unknown };
  if (kind === 'List' && Array.isArray(items)) return items.flatMap((item, i) => podHolders(item, [...at, 'items', i]));
  if (typeof kind !== 'string' || typeof apiVersion !== 'string' || !(kind in TEMPLATE_PATHS)) return [];
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
  // Same kind name in another API group (a CRD called Job, say) is not ours to touch.
  return group === TEMPLATE_PATHS[kind].group ? [{ at, value }] : [];
}

function getPath(value: unknown, path: (string | number)[]): unknown {
  return path.reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k as string] : undefined), value);
}

/** `spec.containers[0].ports[1].containerPort` / `metadata.annotations["a/b"]` -> segments. */
function fieldPathSegments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const [, name, index, quoted] of path.matchAll(/([^.[\]]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g)) {
    if (name !== undefined) out.push(name);
    else if (index !== undefined) out.push(Number(index));
    else out.push(JSON.parse(quoted) as string);
  }
  return out;
}

/** Applies the difference between the two templates to the YAML nodes, so everything the
 *  mutation did not touch keeps its comments and layout. */
function applyToDocument(doc: Document, base: (string | number)[], before: PodTemplate, after: PodTemplate): void {
  // Containers put in front of the user's are inserted as nodes: a JSON Patch computed by
  // index would rewrite every shifted container and lose its comments.
  const shifted = structuredClone(before);
  for (const key of ['initContainers', 'containers'] as const) {
    const old = before.spec[key] ?? [];
    const now = after.spec[key] ?? [];
    const added = now.length - old.length;
    if (added <= 0 || !old.every((c, i) => c.name === now[added + i].name)) continue;
    const front = now.slice(0, added);
    const seq = doc.getIn([...base, 'spec', key], true);
    if (YAML.isSeq(seq)) seq.items.unshift(...front.map((c) => doc.createNode(c)));
    else doc.setIn([...base, 'spec', key], doc.createNode(front));
    shifted.spec[key] = [...structuredClone(front), ...old];
  }
  for (const op of fastJsonPatch.compare(shifted, after)) {
    const path = [...base, ...op.path.split('/').slice(1).map(unescapePointer)];
    if (op.op === 'remove') doc.deleteIn(path);
    else if (op.op === 'add' || op.op === 'replace') doc.setIn(path, doc.createNode(op.value));
    else throw new Error(`unexpected JSON Patch op ${op.op} from compare`);
  }
  // Make sure the YAML now says exactly what the mutation meant.
  if (!isDeepStrictEqual(getPath(doc.toJS(), base), after)) throw new Error('internal error: the YAML document does not match the injected template');
}

const unescapePointer = (s: string) => s.replace(/~1/g, '/').replace(/~0/g, '~');

function stringifyAll(docs: Document[]): string {
  return docs
    .map((doc, i) => {
      const text = doc.toString({ lineWidth: 0, flowCollectionPadding: false });
      return i > 0 && !text.startsWith('---') ? `---\n${text}` : text;
    })
    .join('');
}
