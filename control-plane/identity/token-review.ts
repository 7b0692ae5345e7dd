// Kubernetes service-account tokens are proven by the API server itself (TokenReview),
// never by parsing the JWT here: only the issuer knows whether a token is still bound
// to a live pod and service account.
import fs from 'node:fs';
import { Agent, request } from 'undici';
import type { WorkloadIdentity } from './ca.ts';

export interface KubernetesReviewOptions {
  /** https://HOST:PORT of the API server. */
  url: string;
  /** A token allowed to create tokenreviews (system:auth-delegator). */
  tokenFile: string;
  /** The API server's serving CA; the system trust store when absent. */
  caFile?: string;
  /** Audiences the workload's token must carry (its projected token's audience). */
  audiences?: string[];
}

export class TokenReviewer {
  private readonly dispatcher: Agent;

  constructor(private readonly options: KubernetesReviewOptions) {
    this.dispatcher = new Agent({ connect: options.caFile ? { ca: fs.readFileSync(options.caFile) } : {} });
  }

  async review(token: string): Promise<{ identity: WorkloadIdentity } | { reason: string }> {
    const body = {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token, ...(this.options.audiences?.length ? { audiences: this.options.audiences } : {}) },
    };
    let status: { authenticated?: boolean; error?: string; user?: { username?: string } } | undefined;
    try {
      const res = await request(`${this.options.url}/apis/authentication.k8s.io/v1/tokenreviews`, {
        method: 'POST',
        dispatcher: this.dispatcher,
        headers: { authorization: `Bearer ${fs.readFileSync(this.options.tokenFile, 'utf8').trim()}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      });
      const text = await res.body.text();
      if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(`TokenReview answered ${res.statusCode}: ${text.slice(0, 300)}`);
      status = (JSON.parse(text) as { status?: typeof status }).status;
    } catch (err) {
      throw new TokenReviewUnavailableError(`the Kubernetes API server could not review the token: ${(err as Error).message}`);
    }
    if (!status?.authenticated) return { reason: `the Kubernetes API server did not authenticate the token${status?.error ? `: ${status.error}` : ''}` };
    const match = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(status.user?.username ?? '');
    if (!match) return { reason: `the token belongs to ${status.user?.username}, not to a service account` };
    return { identity: { namespace: match[1], serviceAccount: match[2] } };
  }

  close(): Promise<void> {
    return this.dispatcher.close();
  }
}

export class TokenReviewUnavailableError extends Error {
  readonly code = 'TESSERA_ERR_TOKEN_REVIEW';
}
