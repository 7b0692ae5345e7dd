// Golden cases for the translator: `NN-topic/input.yaml` holds `{model, endpoints,
// proxy}` written directly as the typed model (no config loader involved), with
// empty lists and obvious defaults left out; `golden.json` holds the ResourceSet.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import type { TranslateInput } from '../../control-plane/translate/index.ts';

export const goldenDir = path.dirname(fileURLToPath(import.meta.url));

export interface GoldenCase {
  name: string;
  dir: string;
  input: TranslateInput;
}

export function goldenCases(): GoldenCase[] {
  return fs
    .readdirSync(goldenDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && fs.existsSync(path.join(goldenDir, d.name, 'input.yaml')))
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const dir = path.join(goldenDir, name);
      return { name, dir, input: withDefaults(YAML.parse(fs.readFileSync(path.join(dir, 'input.yaml'), 'utf8'))) };
    });
}

type Loose = Record<string, any>;

/** Fills what the model's types require but the YAML may leave out. */
export function withDefaults(raw: Loose): TranslateInput {
  const model = raw.model ?? {};
  const ns = (o: Loose) => o.namespace ?? 'default';
  const endpoint = (e: Loose, i: number) => ({
    id: e.id ?? `${e.service}-${i}`,
    namespace: ns(e),
    labels: {},
    health: 'healthy',
    source: 'file',
    ...e,
  });
  return {
    model: {
      services: (model.services ?? []).map((s: Loose) => ({
        ...s,
        namespace: ns(s),
        ports: (s.ports ?? []).map((p: Loose) => ({ appProtocol: 'http', targetPort: p.port, ...p })),
      })),
      routes: (model.routes ?? []).map((r: Loose) => ({
        kind: 'HTTPRoute',
        ...r,
        namespace: ns(r),
        parents: (r.parents ?? []).map((p: Loose) => ({ ...p, namespace: ns(p) })),
        rules: (r.rules ?? []).map((rule: Loose) => ({
          ...rule,
          matches: (rule.matches ?? []).map((m: Loose) => ({ headers: [], queryParams: [], ...m })),
          backends: (rule.backends ?? []).map((b: Loose) => ({ weight: 1, ...b, namespace: ns(b) })),
          filters: (rule.filters ?? []).map(filterWithDefaults),
          ...(rule.retry ? { retry: { codes: [], retryOn: [], ...rule.retry } } : {}),
        })),
      })),
      policies: (model.policies ?? []).map((p: Loose) => ({
        ...p,
        namespace: ns(p),
        targets: (p.targets ?? []).map((t: Loose) => ({ ...t, namespace: ns(t) })),
      })),
      endpoints: (model.endpoints ?? []).map(endpoint),
      authorizationPolicies: (model.authorizationPolicies ?? []).map((p: Loose) => ({
        action: 'ALLOW',
        ...p,
        namespace: ns(p),
        targets: (p.targets ?? []).map((t: Loose) => ({ ...t, namespace: ns(t) })),
        rules: (p.rules ?? []).map((r: Loose) => ({ from: [], to: [], when: [], ...r })),
      })),
      ...(model.meshConfig ? { meshConfig: model.meshConfig } : {}),
      ...(model.comparator ? { comparator: model.comparator } : {}),
      ...(model.mtlsOverrides
        ? { mtlsOverrides: model.mtlsOverrides.map((o: Loose) => ({ ...o, targets: (o.targets ?? []).map((t: Loose) => ({ ...t, namespace: ns(t) })) })) }
        : {}),
      ...(model.telemetry
        ? {
            telemetry: model.telemetry.map((t: Loose) => ({
              ...t,
              namespace: ns(t),
              targets: (t.targets ?? []).map((s: Loose) => ({ ...s, namespace: ns(s) })),
            })),
          }
        : {}),
    },
    endpoints: (raw.endpoints ?? []).map(endpoint),
    proxy: raw.proxy,
  };
}

const emptyModifier = () => ({ set: [], add: [], remove: [] });

function filterWithDefaults(f: Loose): Loose {
  if (f.type === 'RequestHeaderModifier') return { ...f, requestHeaderModifier: { ...emptyModifier(), ...f.requestHeaderModifier } };
  if (f.type === 'ResponseHeaderModifier') return { ...f, responseHeaderModifier: { ...emptyModifier(), ...f.responseHeaderModifier } };
  if (f.type === 'RequestMirror') {
    const backend = f.requestMirror.backend;
    return { ...f, requestMirror: { ...f.requestMirror, backend: { weight: 1, ...backend, namespace: backend.namespace ?? 'default' } } };
  }
  return f;
}
