// protobuf Duration and wrapper helpers in protobufjs object form.

export interface Duration {
  seconds: number;
  nanos: number;
}

/** Milliseconds -> google.protobuf.Duration. Rounds to whole ms first so that
 *  float noise never reaches the wire (and content hashes stay stable). */
export function duration(ms: number): Duration {
  const whole = Math.max(0, Math.round(ms));
  return { seconds: Math.floor(whole / 1000), nanos: (whole % 1000) * 1_000_000 };
}

/** google.protobuf.UInt32Value and friends. */
export function wrap<T>(value: T): { value: T } {
  return { value };
}
