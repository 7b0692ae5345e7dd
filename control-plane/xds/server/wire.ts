// Discovery responses encoded by hand from pre-encoded parts. Every stream that is
// sent the same selection of resources gets the same bytes but for the nonce, so the
// body is encoded once and each stream appends its nonce field: protobuf allows the
// fields of a message in any order, and a message is the concatenation of its fields.
// Field numbers are those of envoy/service/discovery/v3/discovery.proto.
import protobuf from 'protobufjs';
import type { CachedResource } from '../cache/snapshot.ts';
import type { DiscoveryRequest } from './types.ts';

const LEN = 2; // wire type: length-delimited
const tag = (field: number) => (field << 3) | LEN;

// DiscoveryRequest
const REQUEST_VERSION_INFO = 1;
const REQUEST_RESOURCE_NAMES = 3;
const REQUEST_TYPE_URL = 4;
const REQUEST_RESPONSE_NONCE = 5;
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
  const out = Buffer.allocUnsafe(body.length + stringFieldSize(nonce));
  body.copy(out, 0);
  writeStringField(out, body.length, field, nonce);
  return new EncodedResponse(out);
}

// A response per stream and push is the hot path: the small fields around the
// pre-encoded parts are written straight into one buffer, not through a Writer.

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n >>>= 7;
    size++;
  }
  return size;
}

/** Bytes of a length-delimited string field (tag, length, UTF-8). */
function stringFieldSize(value: string): number {
  const length = Buffer.byteLength(value);
  return 1 + varintSize(length) + length;
}

/** Writes a string field at `offset` (field numbers < 16: one tag byte); returns the end. */
function writeStringField(out: Buffer, offset: number, field: number, value: string): number {
  out[offset++] = tag(field);
  let length = Buffer.byteLength(value);
  while (length >= 0x80) {
    out[offset++] = (length & 0x7f) | 0x80;
    length >>>= 7;
  }
  out[offset++] = length;
  return offset + out.write(value, offset);
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
  let size = stringFieldSize(systemVersion) + stringFieldSize(typeUrl) + stringFieldSize(nonce);
  const fields: Buffer[] = [];
  for (const r of resources) {
    const field = deltaResourceField(r);
    fields.push(field);
    size += field.length;
  }
  for (const name of removed) size += stringFieldSize(name);
  const out = Buffer.allocUnsafe(size);
  let offset = writeStringField(out, 0, DELTA_SYSTEM_VERSION_INFO, systemVersion);
  for (const field of fields) offset += field.copy(out, offset);
  offset = writeStringField(out, offset, DELTA_TYPE_URL, typeUrl);
  offset = writeStringField(out, offset, DELTA_NONCE, nonce);
  for (const name of removed) offset = writeStringField(out, offset, DELTA_REMOVED_RESOURCES, name);
  return new EncodedResponse(out);
}

/** A SotW request as grpc-js hands it over. An ACK made only of version, names, type
 *  and nonce (what Envoy sends once its node went with the first request) is read
 *  here: its names are decoded only when asked for, and their encoded bytes are kept
 *  (`resourceNamesBytes`), since an ACK repeats every name the client holds (Envoy:
 *  every EDS name of its clusters) and a stream tells an unchanged list by its bytes.
 *  Any other request (node, error_detail, locators, …) goes to `full` (proto-loader),
 *  so the result has the same fields either way. */
export function decodeSotwRequest(bytes: Buffer, full: (bytes: Buffer) => DiscoveryRequest): DiscoveryRequest {
  const reader = protobuf.Reader.create(bytes);
  const request: DiscoveryRequest = {};
  let namesStart = -1;
  let namesEnd = -1;
  try {
    while (reader.pos < reader.len) {
      const start = reader.pos;
      switch (reader.uint32()) {
        case tag(REQUEST_VERSION_INFO):
          request.version_info = reader.string();
          break;
        case tag(REQUEST_TYPE_URL):
          request.type_url = reader.string();
          break;
        case tag(REQUEST_RESPONSE_NONCE):
          request.response_nonce = reader.string();
          break;
        case tag(REQUEST_RESOURCE_NAMES):
          // Names not side by side (allowed, never seen): the general decoder.
          if (namesStart >= 0 && namesEnd !== start) return full(bytes);
          if (namesStart < 0) namesStart = start;
          reader.skip(reader.uint32());
          namesEnd = reader.pos;
          break;
        default:
          return full(bytes);
      }
    }
  } catch {
    return full(bytes); // malformed: let the general decoder report it
  }
  if (namesStart >= 0) {
    const encoded = bytes.subarray(namesStart, namesEnd);
    let names: string[] | undefined;
    Object.defineProperty(request, 'resource_names', {
      enumerable: true,
      get: () => (names ??= decodeNames(encoded)),
    });
    Object.defineProperty(request, 'resourceNamesBytes', { value: encoded });
  }
  return request;
}

function decodeNames(encoded: Buffer): string[] {
  const reader = protobuf.Reader.create(encoded);
  const names: string[] = [];
  while (reader.pos < reader.len) {
    reader.uint32(); // the tag: only resource_names are in `encoded`
    names.push(reader.string());
  }
  return names;
}
