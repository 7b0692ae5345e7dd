// Pure translation: typed mesh model + proxy context in, Envoy resources out.
// No I/O, no clock, no globals. (Implementation: see the files beside this one.)
import type { Endpoint, MeshModel, ProxyContext } from '../model/types.ts';
import type { ResourceTypeUrl } from '../xds/resources/type-urls.ts';

/** One Envoy resource in protobufjs object form (see xds/resources/codec.ts). */
export interface NamedResource {
  name: string;
  resource: Record<string, unknown>;
}

export type ResourceSet = Partial<Record<ResourceTypeUrl, NamedResource[]>>;

export interface TranslateInput {
  model: MeshModel;
  /** All known instances (EndpointSlice files merged with the registry), healthy or not. */
  endpoints: Endpoint[];
  proxy: ProxyContext;
}
