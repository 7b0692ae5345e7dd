// Errors of the injector. Each names what is wrong and where (a field path in the pod
// template), so a user can fix the manifest without guessing.

export interface Problem {
  /** Field path inside the pod template, e.g. `metadata.annotations["tessera.dev/inbound-ports"]`. */
  path: string;
  message: string;
}

/** A pod template the injector refuses: bad tessera.dev annotations or labels, conflicts
 *  with what it would add. Nothing is injected; every problem is listed. */
export class InjectionError extends Error {
  readonly code = 'TESSERA_ERR_INJECTION';
  constructor(
    readonly problems: Problem[],
    readonly where = 'pod template',
  ) {
    super(`${where}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
  }
}

/** A manifest `tessera inject` cannot process (YAML syntax, refused templates); every
 *  message carries file:line. */
export class ManifestError extends Error {
  readonly code = 'TESSERA_ERR_MANIFEST';
  constructor(readonly messages: string[]) {
    super(messages.join('\n'));
  }
}

/** An AdmissionReview body the webhook cannot answer (not JSON, wrong apiVersion/kind, no uid). */
export class AdmissionReviewError extends Error {
  readonly code = 'TESSERA_ERR_ADMISSION_REVIEW';
}
