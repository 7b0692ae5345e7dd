// State-of-the-world ADS: every response carries the full set of the subscribed
// resources of one type, versioned by content.
import { versionOf, type CachedResource } from '../cache/snapshot.ts';
import { ADS_ORDER, isResourceTypeUrl, isWildcardCapable } from '../resources/type-urls.ts';
import { XdsStream, type StreamDeps, type StreamTransport } from './stream.ts';
import type { DiscoveryRequest, DiscoveryResponse } from './types.ts';

interface SotwSubscription {
  wildcard: boolean;
  names: Set<string>;
  /** Version of the last response, accepted or not: a NACKed version is not resent. */
  sentVersion?: string;
  latestNonce?: string;
}

export class SotwStream extends XdsStream<DiscoveryResponse> {
  private readonly subscriptions = new Map<string, SotwSubscription>();

  constructor(transport: StreamTransport<DiscoveryResponse>, deps: StreamDeps) {
    super(transport, deps, 'sotw');
  }

  onRequest(request: DiscoveryRequest): void {
    if (!this.ensureNode(request.node)) return;
    const typeUrl = request.type_url ?? '';
    if (!isResourceTypeUrl(typeUrl)) {
      this.deps.callbacks.onProtocolError?.(this.info, `unsupported type_url ${JSON.stringify(typeUrl)}`);
      return;
    }
    const nonce = request.response_nonce || undefined;
    this.reportAnswer(typeUrl, nonce, request.error_detail ?? undefined);

    let sub = this.subscriptions.get(typeUrl);
    // A request answering an older nonce is stale: a newer response is on its way.
    if (sub && nonce && sub.latestNonce && nonce !== sub.latestNonce) return;

    const names = request.resource_names ?? [];
    const isNew = !sub;
    if (!sub) {
      sub = { wildcard: false, names: new Set() };
      this.subscriptions.set(typeUrl, sub);
      // A client reconnecting with the version we would send already has it.
      if (request.version_info) sub.sentVersion = request.version_info;
    }
    const changed = updateSubscription(sub, typeUrl, names, isNew);
    const resumed = isNew && Boolean(request.version_info);
    this.respond(typeUrl, sub, changed && !resumed && !request.error_detail);
  }

  protected onSnapshot(): void {
    for (const typeUrl of ADS_ORDER) {
      const sub = this.subscriptions.get(typeUrl);
      if (sub) this.respond(typeUrl, sub, false);
    }
  }

  /** `namesChanged` forces a response even at an unchanged version, since the client
   *  waits for an answer about the names it just asked for. */
  private respond(typeUrl: string, sub: SotwSubscription, namesChanged: boolean): void {
    if (!this.snapshot) return;
    const resources = selected(this.snapshot.get(typeUrl).resources, sub);
    const version = versionOf(resources);
    if (version === sub.sentVersion && !namesChanged) return;
    const resourceNames = resources.map((r) => r.name);
    const nonce = this.nonces.next({ version, sentAt: Date.now(), resourceNames });
    sub.sentVersion = version;
    sub.latestNonce = nonce;
    const response: DiscoveryResponse = {
      version_info: version,
      resources: resources.map((r) => r.any),
      type_url: typeUrl,
      nonce,
    };
    this.send(response);
    this.deps.callbacks.onPush?.(this.info!, {
      typeUrl,
      version,
      nonce,
      resourceNames,
      removedNames: [],
      bytes: resources.reduce((n, r) => n + r.any.value.length, 0),
    });
  }
}

/** Applies the names of a SotW request; returns whether the subscription changed. */
function updateSubscription(sub: SotwSubscription, typeUrl: string, names: string[], isNew: boolean): boolean {
  const explicitWildcard = names.includes('*');
  // Legacy wildcard: a first LDS/CDS request with no names, kept while requests stay empty.
  const wildcard = explicitWildcard || (isWildcardCapable(typeUrl) && names.length === 0 && (isNew || sub.wildcard));
  const next = new Set(names.filter((n) => n !== '*'));
  const changed = isNew || wildcard !== sub.wildcard || next.size !== sub.names.size || [...next].some((n) => !sub.names.has(n));
  sub.wildcard = wildcard;
  sub.names = next;
  return changed;
}

function selected(all: ReadonlyMap<string, CachedResource>, sub: SotwSubscription): CachedResource[] {
  if (sub.wildcard) return [...all.values()];
  const out: CachedResource[] = [];
  for (const name of [...sub.names].sort()) {
    const r = all.get(name);
    if (r) out.push(r);
  }
  return out;
}
