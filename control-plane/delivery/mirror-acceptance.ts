// Who may hand the comparator a mirrored request. The comparator calls the stable and
// candidate instances of a ParallelRun, with its own mesh certificate when they take
// mTLS: a mirror it accepts is a request made in the mesh's name. So (README,
// "Parallel run"):
//   - over TLS, the caller must present a certificate that chains to the mesh's trust
//     bundle and names a SPIFFE ID of the trust domain (a sidecar with a certificate
//     mirrors so, whatever the mTLS mode); its identity is recorded, and the comparator
//     forwards with its own certificate. TLS without such a certificate is refused.
//   - in plaintext (a sidecar without a certificate), only for a run none of whose
//     Services (target, stable, candidate) is STRICT, and the comparator then forwards
//     in plaintext too: it never lends its mesh identity to a caller that proved none.
//   - anything else is refused with 403 and counted (`mtls_required`, `untrusted_client`).
// Pure: what the connection showed in, a verdict out.

/** What the comparator saw of the mirror's connection. */
export type MirrorTransport =
  | { tls: false }
  | {
      tls: true;
      /** The client certificate chained to the trust bundle (Node's `socket.authorized`). */
      authorized: boolean;
      /** Why it did not (Node's `authorizationError`), or that there was none. */
      error?: string;
      /** URI SANs of the client certificate. */
      uris: string[];
    };

export type MirrorRefusal = 'mtls_required' | 'untrusted_client';

export type MirrorVerdict = { accept: true; peer?: string } | { accept: false; reason: MirrorRefusal; message: string };

export function acceptMirror(transport: MirrorTransport, run: { key: string; mtlsRequired: boolean }, trustDomain: string): MirrorVerdict {
  if (transport.tls) {
    if (!transport.authorized) return refuse('untrusted_client', `client certificate not of this mesh: ${transport.error ?? 'none presented'}`);
    const prefix = `spiffe://${trustDomain}/`;
    const peer = transport.uris.find((u) => u.startsWith(prefix));
    if (!peer) return refuse('untrusted_client', `client certificate names no SPIFFE ID of ${trustDomain} (${transport.uris.join(', ') || 'no URI SAN'})`);
    return { accept: true, peer };
  }
  if (run.mtlsRequired) return refuse('mtls_required', `parallel run ${run.key} compares STRICT services: mirrors must come over mTLS with a mesh certificate`);
  return { accept: true };
}

const refuse = (reason: MirrorRefusal, message: string): MirrorVerdict => ({ accept: false, reason, message });

/** The URI SANs of a peer certificate as Node shows them (`URI:a, DNS:b`). */
export function uriSans(subjectaltname: string | undefined): string[] {
  return (subjectaltname ?? '')
    .split(', ')
    .filter((n) => n.startsWith('URI:'))
    .map((n) => n.slice(4));
}
