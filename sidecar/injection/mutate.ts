// The one mutation over a pod template, shared by `tessera inject` and the admission
// webhook. Pure: the template and the options in, a new template (or why not) out.
import { InjectionError, type Problem } from './errors.ts';
import { initContainer, proxyContainer, TOKEN_VOLUME, tokenVolume, type ProxyOptions } from './containers.ts';
import type { Container, PodTemplate } from './kube-types.ts';
import {
  ANNOTATIONS,
  INIT_CONTAINER,
  INJECT_LABEL,
  INJECT_LABEL_DISABLED,
  INJECT_LABEL_ENABLED,
  PORTS,
  PROMETHEUS_ANNOTATIONS,
  PROXY_CONTAINER,
  STATS_PATH,
  SYSTEM_NAMESPACES,
  TESSERA_VERSION,
} from './names.ts';
import { rewriteProbes } from './probes.ts';
import { annotationPath, parseSettings } from './settings.ts';

export interface InjectOptions extends ProxyOptions {
  /** Inject a plain container instead of a native sidecar (clusters before Kubernetes 1.29). */
  legacySidecar: boolean;
  version?: string;
}

export interface PodContext {
  /** The namespace the pod runs in. */
  namespace: string;
  /** The owning workload's name: the default service name after the app labels. */
  workloadName?: string;
}

/** Recorded in the `tessera.dev/status` annotation. */
export interface InjectionStatus {
  version: string;
  mode: 'native' | 'legacy';
  initContainers: string[];
  containers: string[];
  rewrittenProbes: string[];
}

export type InjectionResult = { injected: true; template: PodTemplate; status: InjectionStatus } | { injected: false; reason: string };

export function injectPodTemplate(original: PodTemplate, context: PodContext, options: InjectOptions): InjectionResult {
  const annotations = original.metadata?.annotations ?? {};
  const labels = original.metadata?.labels ?? {};

  const status = annotations[ANNOTATIONS.status];
  if (status !== undefined) return { injected: false, reason: `already injected (${describeStatus(status)})` };
  if (SYSTEM_NAMESPACES.has(context.namespace)) return { injected: false, reason: `pods in ${context.namespace} are never injected` };
  if (original.spec.hostNetwork) return { injected: false, reason: 'hostNetwork pods are never injected (capture would rewrite the node\'s iptables)' };

  const problems: Problem[] = [];
  const optOut = annotations[ANNOTATIONS.inject];
  if (optOut === 'false') return { injected: false, reason: `opted out with ${ANNOTATIONS.inject}: "false"` };
  if (optOut !== undefined) {
    problems.push({
      path: annotationPath(ANNOTATIONS.inject),
      message: `only "false" (opt out) is accepted, got ${JSON.stringify(optOut)}; to opt in, label the namespace or pod template ${INJECT_LABEL}: ${INJECT_LABEL_ENABLED}`,
    });
  }
  const label = labels[INJECT_LABEL];
  if (label === INJECT_LABEL_DISABLED) return { injected: false, reason: `opted out with the label ${INJECT_LABEL}: ${INJECT_LABEL_DISABLED}` };
  if (label !== undefined && label !== INJECT_LABEL_ENABLED) {
    problems.push({ path: `metadata.labels[${JSON.stringify(INJECT_LABEL)}]`, message: `must be "${INJECT_LABEL_ENABLED}" or "${INJECT_LABEL_DISABLED}", got ${JSON.stringify(label)}` });
  }

  const template = structuredClone(original);
  const { settings, problems: settingProblems } = parseSettings(template, { workloadName: context.workloadName, legacySidecar: options.legacySidecar });
  problems.push(...settingProblems);
  for (const [list, field] of [[template.spec.containers, 'containers'], [template.spec.initContainers ?? [], 'initContainers']] as const) {
    list.forEach((c: Container, i: number) => {
      if (c.name === PROXY_CONTAINER || c.name === INIT_CONTAINER) {
        problems.push({ path: `spec.${field}[${i}].name`, message: `a container named ${c.name} exists but the pod has no ${ANNOTATIONS.status} annotation: rename it, Tessera adds its own` });
      }
    });
  }
  (template.spec.volumes ?? []).forEach((v, i) => {
    if (v.name === TOKEN_VOLUME) problems.push({ path: `spec.volumes[${i}].name`, message: `a volume named ${TOKEN_VOLUME} exists: rename it, Tessera mounts its own (the sidecar's service-account token)` });
  });
  const probes = rewriteProbes(template, problems);
  if (problems.length > 0 || !settings) throw new InjectionError(problems);

  const init = initContainer(settings, options);
  const proxy = proxyContainer(settings, probes, options);
  const result: InjectionStatus = {
    version: options.version ?? TESSERA_VERSION,
    mode: settings.nativeSidecar ? 'native' : 'legacy',
    initContainers: [INIT_CONTAINER],
    containers: [],
    rewrittenProbes: Object.keys(probes),
  };
  if (settings.nativeSidecar) {
    // Order matters: capture first, then the proxy (its startupProbe holds back every later
    // container), then the user's init containers, whose traffic the proxy already carries.
    template.spec.initContainers = [init, { ...proxy, restartPolicy: 'Always' }, ...(template.spec.initContainers ?? [])];
    result.initContainers.push(PROXY_CONTAINER);
  } else {
    template.spec.initContainers = [init, ...(template.spec.initContainers ?? [])];
    template.spec.containers = [proxy, ...template.spec.containers];
    result.containers.push(PROXY_CONTAINER);
  }
  template.spec.volumes = [...(template.spec.volumes ?? []), tokenVolume()];
  template.metadata ??= {};
  template.metadata.annotations ??= {};
  if (!settings.nativeSidecar && !template.metadata.annotations['kubectl.kubernetes.io/default-container']) {
    // The proxy is now the first container: keep `kubectl logs/exec` pointing at the app.
    template.metadata.annotations['kubectl.kubernetes.io/default-container'] = original.spec.containers[0]?.name ?? '';
  }
  const scrape = Object.values(PROMETHEUS_ANNOTATIONS);
  if (!scrape.some((name) => template.metadata!.annotations![name] !== undefined)) {
    // Prometheus scrapes the proxy's stats listener; a pod that names its own scrape
    // target (its app's metrics) keeps it: the three annotations describe one target.
    template.metadata.annotations[PROMETHEUS_ANNOTATIONS.scrape] = 'true';
    template.metadata.annotations[PROMETHEUS_ANNOTATIONS.port] = String(PORTS.stats);
    template.metadata.annotations[PROMETHEUS_ANNOTATIONS.path] = STATS_PATH;
  }
  template.metadata.annotations[ANNOTATIONS.status] = JSON.stringify(result);
  return { injected: true, template, status: result };
}

function describeStatus(raw: string): string {
  try {
    const status = JSON.parse(raw) as Partial<InjectionStatus>;
    return `tessera ${status.version ?? '?'}, ${status.mode ?? '?'} sidecar`;
  } catch {
    return `${ANNOTATIONS.status} is present`;
  }
}

/** The service-name fallback for a pod made by a controller: its workload's name, as
 *  Kubernetes' own naming gives it (ReplicaSet "web-5d8f9c" of Deployment "web"). */
export function workloadNameOfPod(metadata: PodTemplate['metadata']): string | undefined {
  const owner = metadata?.ownerReferences?.find((o) => o.controller) ?? metadata?.ownerReferences?.[0];
  if (owner) {
    const hash = metadata?.labels?.['pod-template-hash'];
    if (owner.kind === 'ReplicaSet' && hash && owner.name.endsWith(`-${hash}`)) return owner.name.slice(0, -hash.length - 1);
    return owner.name;
  }
  if (metadata?.name) return metadata.name;
  return metadata?.generateName?.replace(/-+$/, '') || undefined;
}
