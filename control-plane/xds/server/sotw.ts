// State-of-the-world ADS: every response carries the full set of the subscribed
// resources of one type, versioned by content.
import { hash, selectionKey, type Selection, type TypeSnapshot } from '../cache/snapshot.ts';
import { isWildcardCapable, resourceTypeUrl } from '../resources/type-urls.ts';
import { XdsStream, type StreamDeps, type StreamTransport } from './stream.ts';
import type { DiscoveryRequest } from './types.ts';
import { type EncodedResponse, sotwBody, withNonce } from './wire.ts';

interface SotwSubscription {
  wildcard: boolean;
  names: Set<string>;
  /** Identifies the name set, so streams with the same one share a selection. */
  key: string;
  /** Version of the last response, accepted or not: a NACKed version is not resent. */
  sentVersion?: string;
  latestNonce?: string;
  /** The type snapshot the last response was worked out from. */
  seen?: TypeSnapshot;
  /** The names of the last request that was applied, as sent, and their encoded
   *  bytes when the request was read by wire.ts. */
  requested?: readonly string[];
  requestedBytes?: Buffer;
}

export class SotwStream extends XdsStream {
  private readonly subscriptions = new Map<string, SotwSubscription>();

  constructor(transport: StreamTransport, deps: StreamDeps) {
    super(transport, deps, 'sotw');
  }

  onRequest(request: DiscoveryRequest): void {
    if (!this.ensureNode(request.node)) return;
    const typeUrl = resourceTypeUrl(request.type_url ?? '');
    if (!typeUrl) {
      this.deps.callbacks.onProtocolError?.(this.info, `unsupported type_url ${JSON.stringify(request.type_url ?? '')}`);
      return;
    }
    const nonce = request.response_nonce || undefined;
    this.reportAnswer(typeUrl, nonce, request.error_detail ?? undefined);

    let sub = this.subscriptions.get(typeUrl);
    // A request answering an older nonce is stale: a newer response is on its way.
    if (sub && nonce && sub.latestNonce && nonce !== sub.latestNonce) return;

    const isNew = !sub;
    if (!sub) {
      sub = { wildcard: false, names: new Set(), key: '' };
      this.subscriptions.set(typeUrl, sub);
      // A client reconnecting with the version we would send already has it.
      if (request.version_info) sub.sentVersion = request.version_info;
    }
    const changed = updateSubscription(sub, typeUrl, request, isNew);
    const resumed = isNew && Boolean(request.version_info);
    // The client waits for an answer about names it just asked for, even at an
    // unchanged version.
    this.respond(typeUrl, changed && !resumed && !request.error_detail);
  }

  protected heldResources(typeUrl: string) {
    return sotwHeld(this.subscriptions.get(typeUrl));
  }

  protected deliver(typeUrl: string, force: boolean): void {
    const sub = this.subscriptions.get(typeUrl);
    if (!sub || !this.snapshot) return;
    const ts = this.snapshot.get(typeUrl);
    // Unchanged type snapshot (shared across groups and kept across changes of
    // other types): nothing to look at.
    if (ts === sub.seen && !force) return;
    sub.seen = ts;
    const selection = ts.select(sub.key, sub.wildcard, sub.names);
    if (selection.version === sub.sentVersion && !force) return;
    const e = encoded(selection, typeUrl);
    const { names, bytes } = e;
    const sentAt = Date.now();
    const nonce = this.nonces.next({ version: selection.version, sentAt, resourceNames: names });
    sub.sentVersion = selection.version;
    sub.latestNonce = nonce;
    this.send(responseOf(e, nonce), typeUrl, nonce, selection.version, sentAt);
    this.deps.callbacks.onPush?.(this.info!, { typeUrl, version: selection.version, nonce, resourceNames: names, removedNames: [], bytes });
  }
}

/** The resources the client was last sent (SotW: all of them every time). */
export function sotwHeld(sub: { seen?: TypeSnapshot; key: string; wildcard: boolean; names: Set<string> } | undefined) {
  if (!sub) return undefined;
  if (!sub.seen) return [];
  return sub.seen.select(sub.key, sub.wildcard, sub.names).resources.map((r) => ({ name: r.name, version: r.version, resource: r }));
}

interface EncodedSelection {
  body: Buffer;
  names: string[];
  bytes: number;
  /** Whole responses by nonce: streams that connected alike count their pushes
   *  alike, so most of them send the same nonce and can share one buffer. */
  byNonce: Map<string, EncodedResponse>;
}

/** The response body of a selection, encoded once for every stream that gets it. */
function encoded(selection: Selection, typeUrl: string): EncodedSelection {
  let e = selection.derived.get('sotw') as EncodedSelection | undefined;
  if (!e) {
    e = {
      body: sotwBody(selection.version, typeUrl, selection.resources),
      names: selection.resources.map((r) => r.name),
      bytes: selection.resources.reduce((n, r) => n + r.any.value.length, 0),
      byNonce: new Map(),
    };
    selection.derived.set('sotw', e);
  }
  return e;
}

/** At most this many whole responses are kept per selection. */
const RESPONSES_PER_SELECTION = 4;

function responseOf(e: EncodedSelection, nonce: string): EncodedResponse {
  let response = e.byNonce.get(nonce);
  if (!response) {
    response = withNonce(e.body, nonce);
    if (e.byNonce.size >= RESPONSES_PER_SELECTION) e.byNonce.delete(e.byNonce.keys().next().value!);
    e.byNonce.set(nonce, response);
  }
  return response;
}

/** Applies the names of a SotW request; returns whether the subscription changed. */
function updateSubscription(sub: SotwSubscription, typeUrl: string, request: DiscoveryRequest, isNew: boolean): boolean {
  // Every ACK repeats the names (Envoy: every EDS name of its clusters), mostly in the
  // same order: the same list as last time changes nothing, and needs no set built
  // (nor, when the bytes are at hand, the names decoded).
  const bytes = request.resourceNamesBytes;
  if (!isNew && bytes && sub.requestedBytes?.equals(bytes)) return false;
  const names = request.resource_names ?? [];
  sub.requestedBytes = bytes;
  if (!isNew && sub.requested && sameList(sub.requested, names)) return false;
  sub.requested = names;
  const explicitWildcard = names.includes('*');
  // Legacy wildcard: a first LDS/CDS request with no names, kept while requests stay empty.
  const wildcard = explicitWildcard || (isWildcardCapable(typeUrl) && names.length === 0 && (isNew || sub.wildcard));
  const next = new Set(names.filter((n) => n !== '*'));
  const changed = isNew || wildcard !== sub.wildcard || next.size !== sub.names.size || [...next].some((n) => !sub.names.has(n));
  if (!changed) return false;
  sub.wildcard = wildcard;
  sub.names = next;
  sub.key = hash(selectionKey(wildcard, next));
  return true;
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
