// Small shared builders: where dynamic resources come from, and socket addresses.
import type { Proto } from './context.ts';

/** "Fetch it over the same ADS stream", the only config source Tessera serves. */
export function adsConfigSource(): Proto {
  return { ads: {}, resource_api_version: 'V3' };
}

export function socketAddress(address: string, port: number): Proto {
  return { socket_address: { address, port_value: port } };
}
