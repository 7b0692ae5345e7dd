// Workload certificates over the admin API (DESIGN.md "Identity and mTLS"): a CSR plus a
// proof of identity in, a certificate for the PROVEN identity out. The SAN never comes
// from the CSR or from xDS node metadata, so a workload cannot name its way into
// another's identity.
import { HttpError, type AdminRoute } from '../admin/router.ts';
import { parseDuration } from '../config/duration.ts';
import { CaError, CsrError, type CertificateAuthority, type IssuedCertificate, type WorkloadIdentity } from './ca.ts';
import type { JoinTokens } from './join-tokens.ts';
import { TokenReviewUnavailableError, type TokenReviewer } from './token-review.ts';

export const DEFAULT_CERTIFICATE_LIFETIME_MS = 24 * 3600_000;
const MAX_JOIN_TOKEN_TTL_MS = 366 * 24 * 3600_000;
const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export interface IssuedRecord {
  spiffeId: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  issuedAt: string;
  /** Who asked, as the agent says (informational: it does not change the identity). */
  node?: string;
  proof: 'join-token' | 'kubernetes';
}

export interface IdentityServiceOptions {
  ca: CertificateAuthority;
  joinTokens: JoinTokens;
  kubernetes?: TokenReviewer;
  /** MeshConfig's certificateLifetime and trustDomain, as currently served. */
  lifetimeMs: () => number;
  trustDomain: () => string;
  log: (line: string) => void;
  onIssued?: (record: IssuedRecord) => void;
}

export class IdentityService {
  /** The newest certificate of each node (or identity, for callers that name no node). */
  private readonly issued = new Map<string, IssuedRecord>();

  constructor(private readonly o: IdentityServiceOptions) {}

  certificates(): IssuedRecord[] {
    const now = Date.now();
    for (const [key, r] of this.issued) if (Date.parse(r.notAfter) <= now) this.issued.delete(key);
    return [...this.issued.values()].sort((a, b) => (a.spiffeId < b.spiffeId ? -1 : a.spiffeId > b.spiffeId ? 1 : 0));
  }

  async issue(body: { csr: string; joinToken?: string; kubernetesToken?: string; node?: string }): Promise<IssuedCertificate> {
    const { identity, proof } = await this.prove(body);
    const cert = await this.o.ca.issue(body.csr, identity, this.o.lifetimeMs(), this.o.trustDomain());
    const record: IssuedRecord = {
      spiffeId: cert.spiffeId,
      serial: cert.serial,
      notBefore: cert.notBefore.toISOString(),
      notAfter: cert.notAfter.toISOString(),
      issuedAt: new Date().toISOString(),
      ...(body.node ? { node: body.node } : {}),
      proof,
    };
    this.issued.set(body.node ?? cert.spiffeId, record);
    this.o.onIssued?.(record);
    return cert;
  }

  private async prove(body: { joinToken?: string; kubernetesToken?: string }): Promise<{ identity: WorkloadIdentity; proof: IssuedRecord['proof'] }> {
    if (body.joinToken !== undefined) {
      const result = this.o.joinTokens.verify(body.joinToken);
      if ('reason' in result) throw new HttpError(401, `identity not proven: ${result.reason}`, 'TESSERA_ERR_UNAUTHORIZED');
      return { identity: result.identity, proof: 'join-token' };
    }
    if (body.kubernetesToken !== undefined) {
      if (!this.o.kubernetes) {
        throw new HttpError(401, 'identity not proven: this control plane does not review Kubernetes tokens (start it with --kube-api)', 'TESSERA_ERR_UNAUTHORIZED');
      }
      try {
        const result = await this.o.kubernetes.review(body.kubernetesToken);
        if ('reason' in result) throw new HttpError(401, `identity not proven: ${result.reason}`, 'TESSERA_ERR_UNAUTHORIZED');
        return { identity: result.identity, proof: 'kubernetes' };
      } catch (err) {
        if (err instanceof TokenReviewUnavailableError) throw new HttpError(503, err.message, err.code);
        throw err;
      }
    }
    throw new HttpError(401, 'identity not proven: the body needs "joinToken" or "kubernetesToken" beside "csr"', 'TESSERA_ERR_UNAUTHORIZED');
  }
}

export function identityRoutes(service: IdentityService, o: Pick<IdentityServiceOptions, 'ca' | 'joinTokens' | 'log'>): AdminRoute[] {
  return [
    {
      method: 'POST',
      pattern: '/api/v1/certificates',
      // Authenticated by the proof of identity in the body, not by the admin token.
      handler: async ({ body }) => {
        const request = jsonObject(await body());
        const fields = { csr: 'string', joinToken: 'string', kubernetesToken: 'string', node: 'string' } as const;
        for (const [key, value] of Object.entries(request)) {
          if (!(key in fields)) throw new HttpError(400, `unknown field ${JSON.stringify(key)} (expected csr, joinToken or kubernetesToken, node)`);
          if (typeof value !== 'string') throw new HttpError(400, `${key} must be a string`);
        }
        if (typeof request.csr !== 'string') throw new HttpError(400, 'csr (a PEM certificate request) is required');
        try {
          const cert = await service.issue(request as { csr: string });
          return {
            status: 200,
            json: {
              spiffeId: cert.spiffeId,
              serial: cert.serial,
              notBefore: cert.notBefore.toISOString(),
              notAfter: cert.notAfter.toISOString(),
              certificateChain: cert.certificateChain,
              trustBundle: cert.trustBundle,
            },
          };
        } catch (err) {
          if (err instanceof CsrError) throw new HttpError(400, err.message, err.code);
          if (err instanceof HttpError) o.log(`certificates: refused${request.node ? ` for ${String(request.node).slice(0, 200)}` : ''}: ${err.message}`);
          throw err;
        }
      },
    },
    {
      method: 'GET',
      pattern: '/api/v1/certificates',
      handler: () => ({ status: 200, json: { authorities: o.ca.authorities(), certificates: service.certificates() } }),
    },
    {
      method: 'GET',
      pattern: '/api/v1/trust-bundle',
      handler: () => ({ status: 200, text: o.ca.trustBundle(), contentType: 'application/x-pem-file' }),
    },
    {
      method: 'POST',
      pattern: '/api/v1/ca/rotate',
      mutates: true,
      handler: async () => {
        try {
          const { switchAt } = await o.ca.rotate();
          o.log(`ca: root rotation started; the new root is trusted now and signs from ${switchAt.toISOString()}`);
          return { status: 202, json: { switchAt: switchAt.toISOString(), authorities: o.ca.authorities() } };
        } catch (err) {
          if (err instanceof CaError) throw new HttpError(409, err.message, err.code);
          throw err;
        }
      },
    },
    {
      method: 'POST',
      pattern: '/api/v1/join-tokens',
      mutates: true,
      handler: async ({ body }) => {
        const request = jsonObject(await body());
        for (const key of Object.keys(request)) {
          if (!['namespace', 'serviceAccount', 'ttl'].includes(key)) throw new HttpError(400, `unknown field ${JSON.stringify(key)} (expected serviceAccount, namespace, ttl)`);
        }
        const namespace = request.namespace ?? 'default';
        const serviceAccount = request.serviceAccount;
        for (const [field, value] of [['namespace', namespace], ['serviceAccount', serviceAccount]] as const) {
          if (typeof value !== 'string' || !LABEL.test(value)) throw new HttpError(400, `${field} must be a DNS label (lowercase letters, digits, '-'), got ${JSON.stringify(value)}`);
        }
        let ttlMs = 30 * 24 * 3600_000;
        if (request.ttl !== undefined) {
          try {
            ttlMs = parseDuration(String(request.ttl));
          } catch (err) {
            throw new HttpError(400, `ttl: ${(err as Error).message}`);
          }
          if (ttlMs < 60_000 || ttlMs > MAX_JOIN_TOKEN_TTL_MS) throw new HttpError(400, `ttl must be between 1m and 8784h, got ${request.ttl}`);
        }
        const { token, record } = o.joinTokens.create({ namespace: namespace as string, serviceAccount: serviceAccount as string }, ttlMs);
        return { status: 201, json: { token, ...record } };
      },
    },
    { method: 'GET', pattern: '/api/v1/join-tokens', handler: () => ({ status: 200, json: { joinTokens: o.joinTokens.list() } }) },
    {
      method: 'DELETE',
      pattern: '/api/v1/join-tokens/{id}',
      mutates: true,
      handler: ({ params }) => {
        if (!o.joinTokens.revoke(params.id)) throw new HttpError(404, `no join token ${params.id}`, 'TESSERA_ERR_NOT_FOUND');
        return { status: 204 };
      },
    },
  ];
}

function jsonObject(raw: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `the body is not valid JSON: ${(err as Error).message}`, 'TESSERA_ERR_BAD_JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new HttpError(400, 'the body must be a JSON object');
  return parsed as Record<string, unknown>;
}
