// Incremental (delta) ADS: only changed resources are sent, each with its own
// version, and deletions are named in removed_resources.
import { hash, selectionKey, type CachedResource, type TypeSnapshot } from '../cache/snapshot.ts';
import { isWildcardCapable, resourceTypeUrl } from '../resources/type-urls.ts';
import { XdsStream, type StreamDeps, type StreamTransport } from './stream.ts';
import type { DeltaDiscoveryRequest } from './types.ts';
import { deltaResponse } from './wire.ts';

interface DeltaSubscription {
  wildcard: boolean;
  names: Set<string>;
  key: string;
  /** What we believe the client holds: name -> version. Updated on send, so a
   *  NACKed version is not resent until the resource changes again. */
  held: Map<string, string>;
  answeredOnce: boolean;
  /** The type snapshot `held` was last brought up to date with; undefined after
   *  the subscription changed, so everything is compared once. */
  seen?: TypeSnapshot;
}

export class DeltaStream extends XdsStream {
  private readonly subscriptions = new Map<string, DeltaSubscription>();

  constructor(transport: StreamTransport, deps: StreamDeps) {
    super(transport, deps, 'delta');
  }

  onRequest(request: DeltaDiscoveryRequest): void {
    if (!this.ensureNode(request.node)) return;
    const typeUrl = resourceTypeUrl(request.type_url ?? '');
    if (!typeUrl) {
      this.deps.callbacks.onProtocolError?.(this.info, `unsupported type_url ${JSON.stringify(request.type_url ?? '')}`);
      return;
    }
    this.reportAnswer(typeUrl, request.response_nonce || undefined, request.error_detail ?? undefined);

    const subscribe = request.resource_names_subscribe ?? [];
    const unsubscribe = request.resource_names_unsubscribe ?? [];
    let sub = this.subscriptions.get(typeUrl);
    if (!sub) {
      sub = {
        wildcard: isWildcardCapable(typeUrl) && subscribe.length === 0,
        names: new Set(),
        key: '',
        held: new Map(Object.entries(request.initial_resource_versions ?? {})),
        answeredOnce: false,
      };
      this.subscriptions.set(typeUrl, sub);
    }
    if (subscribe.length === 0 && unsubscribe.length === 0 && sub.answeredOnce) return; // a plain ACK or NACK
    // Unlike SotW, every delta request carries subscription changes, stale nonce or not.
    for (const name of subscribe) {
      if (name === '*') sub.wildcard = true;
      else sub.names.add(name);
    }
    for (const name of unsubscribe) {
      if (name === '*') sub.wildcard = false;
      else {
        sub.names.delete(name);
        if (!sub.wildcard) sub.held.delete(name);
      }
    }
    // A resource asked for again must be sent again, even at a version we sent before.
    for (const name of subscribe) if (!request.initial_resource_versions?.[name]) sub.held.delete(name);
    sub.key = hash(selectionKey(sub.wildcard, sub.names));
    sub.seen = undefined;
    this.respond(typeUrl, false);
  }

  /** What the client holds: each name at the version it was sent, with the resource
   *  when the snapshot still has that version. */
  protected heldResources(typeUrl: string) {
    const sub = this.subscriptions.get(typeUrl);
    if (!sub) return undefined;
    const all = this.snapshot?.get(typeUrl).resources;
    return [...sub.held].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, version]) => {
      const r = all?.get(name);
      return { name, version, resource: r?.version === version ? r : undefined };
    });
  }

  protected deliver(typeUrl: string): void {
    const sub = this.subscriptions.get(typeUrl);
    if (!sub || !this.snapshot) return;
    const ts = this.snapshot.get(typeUrl);
    if (ts === sub.seen) return;
    const all = ts.resources;
    // Since the last look, only the names the snapshot says changed can differ.
    const candidates: Iterable<string> = (sub.seen && ts.changedSince(sub.seen)) ?? new Set([...all.keys(), ...sub.held.keys()]);
    sub.seen = ts;
    const changed: CachedResource[] = [];
    const removed: string[] = [];
    // No closures here: this runs once per stream and change (and tsx's keepNames
    // would wrap a named one in a defineProperty call each time).
    for (const name of candidates) {
      const r = all.get(name);
      if (r && (sub.wildcard || sub.names.has(name))) {
        if (sub.held.get(name) !== r.version) changed.push(r);
      } else if (sub.held.has(name)) removed.push(name);
    }
    // The first answer is owed even when empty: the client waits for it to finish warming.
    if (changed.length === 0 && removed.length === 0 && sub.answeredOnce) return;
    sub.answeredOnce = true;
    if (changed.length > 1) changed.sort(byName);
    if (removed.length > 1) removed.sort();
    const resourceNames: string[] = [];
    let bytes = 0;
    for (const r of changed) {
      sub.held.set(r.name, r.version);
      resourceNames.push(r.name);
      bytes += r.any.value.length;
    }
    for (const name of removed) sub.held.delete(name);

    const version = ts.select(sub.key, sub.wildcard, sub.names).version;
    const sentAt = Date.now();
    const nonce = this.nonces.next({ version, sentAt, resourceNames });
    this.send(deltaResponse(version, typeUrl, changed, removed, nonce), typeUrl, nonce, version, sentAt);
    this.deps.callbacks.onPush?.(this.info!, { typeUrl, version, nonce, resourceNames, removedNames: removed, bytes });
  }
}

function byName(a: CachedResource, b: CachedResource): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
