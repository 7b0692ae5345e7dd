// The admission half of the injector, without any I/O: an AdmissionReview (admission.k8s.io/v1)
// in, the AdmissionReview answer out, with the mutation as a base64 JSONPatch.
import fastJsonPatch from 'fast-json-patch';
import { AdmissionReviewError, InjectionError } from './errors.ts';
import type { PodTemplate } from './kube-types.ts';
import { injectPodTemplate, workloadNameOfPod, type InjectOptions } from './mutate.ts';

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  status?: { code: number; message: string; reason?: string };
  warnings?: string[];
}

export interface AdmissionReviewAnswer {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

export interface ReviewOutcome {
  answer: AdmissionReviewAnswer;
  /** One line for the injector's log: what was decided for which pod. */
  summary: string;
}

/** Answers one AdmissionReview. Throws AdmissionReviewError for a body that is not one
 *  (the server answers 400); a pod it refuses gets `allowed: false` with every problem. */
export function review(body: unknown, options: InjectOptions): ReviewOutcome {
  if (!body || typeof body !== 'object') throw new AdmissionReviewError('the body must be a JSON object (an AdmissionReview)');
  const { apiVersion, kind, request } = body as { apiVersion?: unknown; kind?: unknown; request?: unknown };
  if (kind !== 'AdmissionReview') throw new AdmissionReviewError(`kind must be AdmissionReview, got ${JSON.stringify(kind)}`);
  if (apiVersion !== 'admission.k8s.io/v1') {
    throw new AdmissionReviewError(`apiVersion must be admission.k8s.io/v1, got ${JSON.stringify(apiVersion)} (set admissionReviewVersions: ["v1"] in the webhook configuration)`);
  }
  if (!request || typeof request !== 'object') throw new AdmissionReviewError('request is missing');
  const req = request as { uid?: unknown; kind?: { kind?: unknown }; namespace?: unknown; operation?: unknown; object?: unknown };
  if (typeof req.uid !== 'string' || req.uid === '') throw new AdmissionReviewError('request.uid must be a non-empty string');
  const uid = req.uid;
  const answer = (response: Omit<AdmissionResponse, 'uid'>): AdmissionReviewAnswer => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, ...response } });

  if (req.kind?.kind !== 'Pod' || req.operation !== 'CREATE') {
    // Only pod creation is injected; anything else the configuration sends us passes as is.
    return { answer: answer({ allowed: true }), summary: `${String(req.operation)} ${String(req.kind?.kind)}: not a pod creation, allowed unchanged` };
  }
  const pod = req.object as PodTemplate | undefined;
  if (!pod || typeof pod !== 'object' || !pod.spec || !Array.isArray(pod.spec.containers)) {
    return { answer: answer({ allowed: false, status: { code: 400, message: 'request.object is not a Pod with spec.containers', reason: 'BadRequest' } }), summary: 'refused: no pod in the request' };
  }
  // On CREATE the object often has no namespace yet; the request's is the one it gets.
  const namespace = (typeof req.namespace === 'string' && req.namespace) || pod.metadata?.namespace || 'default';
  const name = pod.metadata?.name || `${pod.metadata?.generateName ?? ''}*`;
  const where = `pod ${namespace}/${name}`;
  try {
    const result = injectPodTemplate(pod, { namespace, workloadName: workloadNameOfPod(pod.metadata) }, options);
    if (!result.injected) return { answer: answer({ allowed: true }), summary: `${where}: unchanged, ${result.reason}` };
    const patch = fastJsonPatch.compare(pod, result.template);
    return {
      answer: answer({ allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') }),
      summary: `${where}: injected (${result.status.mode} sidecar, ${result.status.rewrittenProbes.length} probes rewritten)`,
    };
  } catch (err) {
    if (!(err instanceof InjectionError)) throw err;
    const message = `Tessera cannot inject ${where}: ${err.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`;
    return { answer: answer({ allowed: false, status: { code: 400, message, reason: 'BadRequest' } }), summary: `${where}: refused, ${message}` };
  }
}
