// Incremental (delta) ADS: only changed resources are sent, each with its own
// version, and deletions are named in removed_resources.
import { versionOf, type CachedResource } from '../cache/snapshot.ts';
import { ADS_ORDER, isResourceTypeUrl, isWildcardCapable } from '../resources/type-urls.ts';
import { XdsStream, type StreamDeps, type StreamTransport } from './stream.ts';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse } from './types.ts';

interface DeltaSubscription {
  wildcard: boolean;
  names: Set<string>;
  /** What we believe the client holds: name -> version. Updated on send, so a
   *  NACKed version is not resent until the resource changes again. */
  held: Map<string, string>;
  answeredOnce: boolean;
}

export class DeltaStream extends XdsStream<DeltaDiscoveryResponse> {
  private readonly subscriptions = new Map<string, DeltaSubscription>();

  constructor(transport: StreamTransport<DeltaDiscoveryResponse>, deps: StreamDeps) {
    super(transport, deps, 'delta');
  }

  onRequest(request: DeltaDiscoveryRequest): void {
    if (!this.ensureNode(request.node)) return;
    const typeUrl = request.type_url ?? '';
    if (!isResourceTypeUrl(typeUrl)) {
      this.deps.callbacks.onProtocolError?.(this.info, `unsupported type_url ${JSON.stringify(typeUrl)}`);
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
        held: new Map(Object.entries(request.initial_resource_versions ?? {})),
        answeredOnce: false,
      };
      this.subscriptions.set(typeUrl, sub);
    }
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
    this.respond(typeUrl, sub);
  }

  protected onSnapshot(): void {
    for (const typeUrl of ADS_ORDER) {
      const sub = this.subscriptions.get(typeUrl);
      if (sub) this.respond(typeUrl, sub);
    }
  }

  private respond(typeUrl: string, sub: DeltaSubscription): void {
    if (!this.snapshot) return;
    const all = this.snapshot.get(typeUrl).resources;
    const wanted = (name: string) => sub.wildcard || sub.names.has(name);
    const changed: CachedResource[] = [];
    for (const r of all.values()) {
      if (wanted(r.name) && sub.held.get(r.name) !== r.version) changed.push(r);
    }
    const removed = [...sub.held.keys()].filter((name) => !all.has(name) || !wanted(name)).sort();
    // The first answer is owed even when empty: the client waits for it to finish warming.
    if (changed.length === 0 && removed.length === 0 && sub.answeredOnce) return;
    sub.answeredOnce = true;
    for (const r of changed) sub.held.set(r.name, r.version);
    for (const name of removed) sub.held.delete(name);

    const version = versionOf([...all.values()].filter((r) => wanted(r.name)));
    const resourceNames = changed.map((r) => r.name);
    const nonce = this.nonces.next({ version, sentAt: Date.now(), resourceNames });
    this.send({
      system_version_info: version,
      resources: changed.map((r) => ({ name: r.name, version: r.version, resource: r.any })),
      type_url: typeUrl,
      removed_resources: removed,
      nonce,
    });
    this.deps.callbacks.onPush?.(this.info!, {
      typeUrl,
      version,
      nonce,
      resourceNames,
      removedNames: removed,
      bytes: changed.reduce((n, r) => n + r.any.value.length, 0),
    });
  }
}
