// Discovery responses encoded by hand from pre-encoded parts. Every stream that is
// sent the same selection of resources gets the same bytes but for the nonce, so the
// body is encoded once and each stream appends its nonce field: protobuf allows the
// fields of a message in any order, and a message is the concatenation of its fields.
// Field numbers are those of envoy/service/discovery/v3/discovery.proto.
import protobuf from 'protobufjs';
import type { CachedResource } from '../cache/snapshot.ts';

const LEN = 2; // wire type: length-delimited
const tag = (field: number) => (field << 3) | LEN;

// DiscoveryResponse
const SOTW_VERSION_INFO = 1;
const SOTW_RESOURCES = 2;
const SOTW_TYPE_URL = 4;
const SOTW_NONCE = 5;
// DeltaDiscoveryResponse
const DELTA_SYSTEM_VERSION_INFO = 1;
const DELTA_RESOURCES = 2;
const DELTA_TYPE_URL = 4;
const DELTA_NONCE = 5;
const DELTA_REMOVED_RESOURCES = 6;
// Resource (delta)
const RESOURCE_VERSION = 1;
const RESOURCE_RESOURCE = 2;
const RESOURCE_NAME = 3;
// google.protobuf.Any
const ANY_TYPE_URL = 1;
const ANY_VALUE = 2;

/** A response already in wire form; the server's serializer passes it through. */
export class EncodedResponse {
  constructor(readonly bytes: Buffer) {}
}

function writeAny(w: protobuf.Writer, r: CachedResource): void {
  w.fork().uint32(tag(ANY_TYPE_URL)).string(r.any.type_url).uint32(tag(ANY_VALUE)).bytes(r.any.value).ldelim();
}

/** DiscoveryResponse without its nonce. */
export function sotwBody(version: string, typeUrl: string, resources: readonly CachedResource[]): Buffer {
  const w = protobuf.Writer.create();
  w.uint32(tag(SOTW_VERSION_INFO)).string(version);
  for (const r of resources) {
    w.uint32(tag(SOTW_RESOURCES));
    writeAny(w, r);
  }
  w.uint32(tag(SOTW_TYPE_URL)).string(typeUrl);
  return Buffer.from(w.finish());
}

export function withNonce(body: Buffer, nonce: string, field = SOTW_NONCE): EncodedResponse {
  const w = protobuf.Writer.create();
  w.uint32(tag(field)).string(nonce);
  return new EncodedResponse(Buffer.concat([body, w.finish()]));
}

const deltaResources = new WeakMap<CachedResource, Buffer>();

/** One `resources` entry of a DeltaDiscoveryResponse (tag included), kept per resource. */
function deltaResourceField(r: CachedResource): Buffer {
  let bytes = deltaResources.get(r);
  if (!bytes) {
    const w = protobuf.Writer.create();
    w.uint32(tag(DELTA_RESOURCES)).fork();
    w.uint32(tag(RESOURCE_VERSION)).string(r.version);
    w.uint32(tag(RESOURCE_RESOURCE));
    writeAny(w, r);
    w.uint32(tag(RESOURCE_NAME)).string(r.name);
    w.ldelim();
    deltaResources.set(r, (bytes = Buffer.from(w.finish())));
  }
  return bytes;
}

export function deltaResponse(
  systemVersion: string,
  typeUrl: string,
  resources: readonly CachedResource[],
  removed: readonly string[],
  nonce: string,
): EncodedResponse {
  const head = protobuf.Writer.create();
  head.uint32(tag(DELTA_SYSTEM_VERSION_INFO)).string(systemVersion);
  const tail = protobuf.Writer.create();
  tail.uint32(tag(DELTA_TYPE_URL)).string(typeUrl);
  tail.uint32(tag(DELTA_NONCE)).string(nonce);
  for (const name of removed) tail.uint32(tag(DELTA_REMOVED_RESOURCES)).string(name);
  return new EncodedResponse(Buffer.concat([head.finish(), ...resources.map(deltaResourceField), tail.finish()]));
}
