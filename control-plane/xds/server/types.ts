// Wire shapes of the discovery messages as @grpc/proto-loader gives them
// (keepCase, defaults off: absent repeated fields are undefined).
import type { EncodedAny } from '../resources/codec.ts';
import type { ProtoStruct } from '../resources/struct.ts';

export interface XdsNode {
  id?: string;
  cluster?: string;
  metadata?: ProtoStruct;
  user_agent_name?: string;
  user_agent_version?: string;
  locality?: { region?: string; zone?: string; sub_zone?: string };
}

export interface RpcStatus {
  code?: number;
  message?: string;
}

export interface DiscoveryRequest {
  version_info?: string;
  node?: XdsNode;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: RpcStatus;
  /** The encoded resource_names fields, when the server's own decoder read the
   *  request (wire.ts): equal bytes are equal name lists. */
  resourceNamesBytes?: Buffer;
}

export interface DiscoveryResponse {
  version_info: string;
  resources: EncodedAny[];
  type_url: string;
  nonce: string;
}

export interface DeltaDiscoveryRequest {
  node?: XdsNode;
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: RpcStatus;
}

export interface DeltaDiscoveryResponse {
  system_version_info: string;
  resources: { name: string; version: string; resource: EncodedAny }[];
  type_url: string;
  removed_resources: string[];
  nonce: string;
}

export type XdsProtocol = 'sotw' | 'delta';

export interface StreamInfo {
  streamId: number;
  protocol: XdsProtocol;
  node: XdsNode;
  group: string;
  peer: string;
  connectedAt: Date;
}

export interface PushInfo {
  typeUrl: string;
  version: string;
  nonce: string;
  resourceNames: string[];
  removedNames: string[];
  bytes: number;
}

export interface AckInfo {
  typeUrl: string;
  version: string;
  nonce: string;
  /** Time from the push to this answer, when the nonce is one we remember. */
  latencyMs?: number;
}

/** Cross-cutting behaviour (tracking, metrics, logs) hangs off these, not the core. */
export interface XdsCallbacks {
  onStreamOpen?(stream: StreamInfo): void;
  onStreamClose?(stream: StreamInfo): void;
  onPush?(stream: StreamInfo, push: PushInfo): void;
  onAck?(stream: StreamInfo, ack: AckInfo): void;
  onNack?(stream: StreamInfo, nack: AckInfo & { error: RpcStatus }): void;
  onProtocolError?(stream: StreamInfo | undefined, message: string): void;
}

/** Which proxy group (shared snapshot) a node belongs to. */
export type NodeGrouper = (node: XdsNode) => string;
