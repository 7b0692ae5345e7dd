// Small shared builders: where dynamic resources come from, and socket addresses.
import type { Address, ConfigSource } from './envoy-types.ts';

/** "Fetch it over the same ADS stream", the only config source Tessera serves. */
export function adsConfigSource(): ConfigSource {
  return { ads: {}, resource_api_version: 'V3' };
}

export function socketAddress(address: string, port: number): Address {
  return { socket_address: { address, port_value: port } };
}
