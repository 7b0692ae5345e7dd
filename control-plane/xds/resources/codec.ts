// The one codec for google.protobuf.Any. Resources are plain objects in protobufjs
// form: snake_case fields, Durations as {seconds, nanos}, wrappers as {value},
// nested Anys as {'@type': url, ...fields}.
import protobuf from 'protobufjs';
import { envoyRoot } from '../../../protos/loader.ts';
import { messageName } from './type-urls.ts';

export interface EncodedAny {
  type_url: string;
  value: Buffer;
}

export class ResourceEncodeError extends Error {
  readonly code = 'TESSERA_ERR_RESOURCE_ENCODE';
  constructor(typeUrl: string, reason: string) {
    super(`cannot encode ${messageName(typeUrl)}: ${reason}`);
  }
}

function lookup(typeUrl: string): protobuf.Type {
  return envoyRoot().lookupType(messageName(typeUrl));
}

/** Encodes a resource and checks that every nested Any names a loaded type,
 *  because protobufjs silently writes an empty Any for an unknown one. */
export function encodeAny(typeUrl: string, resource: object): EncodedAny {
  const type = lookup(typeUrl);
  const problems: string[] = [];
  checkFields(type, resource, messageName(typeUrl), problems);
  if (problems.length > 0) throw new ResourceEncodeError(typeUrl, problems.join('; '));
  const message = type.fromObject(resource as Record<string, unknown>);
  return { type_url: typeUrl, value: Buffer.from(type.encode(message).finish()) };
}

export function decodeAny(any: { type_url: string; value: Uint8Array }): Record<string, unknown> {
  const type = lookup(any.type_url);
  return type.toObject(type.decode(any.value), {
    longs: Number,
    enums: String,
    bytes: String,
    defaults: false,
    json: true,
  });
}

/** Round-trips a resource through its wire form: what Envoy would see. */
export function normalize(typeUrl: string, resource: object): Record<string, unknown> {
  return decodeAny(encodeAny(typeUrl, resource));
}

/** protobufjs drops unknown fields and misspelt enum values without a word; a
 *  resource we emit must not lose a setting that way, so every key is checked. */
function checkFields(type: protobuf.Type, value: unknown, where: string, problems: string[]): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    problems.push(`${where}: expected a ${type.name} message`);
    return;
  }
  let fieldsType = type;
  const obj = value as Record<string, unknown>;
  if (type.fullName === '.google.protobuf.Any' && typeof obj['@type'] === 'string') {
    try {
      fieldsType = lookup(obj['@type']);
    } catch {
      problems.push(`${where}: @type ${obj['@type']} is not loaded in protos/loader.ts`);
      return;
    }
  }
  for (const [key, v] of Object.entries(obj)) {
    if (key === '@type' && fieldsType !== type) continue;
    const field = fieldsType.fields[key];
    const at = `${where}.${key}`;
    if (!field) {
      problems.push(`${at}: no such field in ${fieldsType.name}`);
      continue;
    }
    field.resolve();
    const check = (item: unknown, itemAt: string) => checkValue(field, item, itemAt, problems);
    if (field.map) {
      for (const [mk, mv] of Object.entries((v ?? {}) as Record<string, unknown>)) check(mv, `${at}[${mk}]`);
    } else if (field.repeated) {
      if (!Array.isArray(v)) problems.push(`${at}: expected a list`);
      else
        for (const [i, item] of v.entries()) check(item, `${at}[${i}]`);
    } else {
      check(v, at);
    }
  }
}

function checkValue(field: protobuf.Field, value: unknown, where: string, problems: string[]): void {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) {
    checkFields(resolved, value, where, problems);
  } else if (resolved instanceof protobuf.Enum) {
    if (typeof value === 'string' ? !(value in resolved.values) : typeof value !== 'number') {
      problems.push(`${where}: ${String(value)} is not a ${resolved.name} value`);
    }
  }
}
