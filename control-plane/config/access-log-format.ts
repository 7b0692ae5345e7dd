// Checks an access-log field value (an Envoy format string) before it reaches a
// proxy: Envoy rejects a listener whose access log names an unknown command, and a
// rejected listener is an outage. Only the commands below are accepted; each one
// is exercised by a real `envoy --mode validate` (test/e2e/envoy-validate.test.ts).

/** Commands that take no argument. */
export const PLAIN_COMMANDS = [
  'BYTES_RECEIVED',
  'BYTES_SENT',
  'CONNECTION_TERMINATION_DETAILS',
  'DOWNSTREAM_DIRECT_REMOTE_ADDRESS',
  'DOWNSTREAM_LOCAL_ADDRESS',
  'DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT',
  'DOWNSTREAM_LOCAL_URI_SAN',
  'DOWNSTREAM_PEER_URI_SAN',
  'DOWNSTREAM_REMOTE_ADDRESS',
  'DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT',
  'DURATION',
  'HOSTNAME',
  'PROTOCOL',
  'REQUEST_DURATION',
  'REQUEST_HEADERS_BYTES',
  'REQUESTED_SERVER_NAME',
  'RESPONSE_CODE',
  'RESPONSE_CODE_DETAILS',
  'RESPONSE_DURATION',
  'RESPONSE_FLAGS',
  'RESPONSE_FLAGS_LONG',
  'RESPONSE_TX_DURATION',
  'ROUTE_NAME',
  'START_TIME',
  'TRACE_ID',
  'UPSTREAM_CLUSTER',
  'UPSTREAM_HOST',
  'UPSTREAM_LOCAL_ADDRESS',
  'UPSTREAM_PROTOCOL',
  'UPSTREAM_REQUEST_ATTEMPT_COUNT',
  'UPSTREAM_TRANSPORT_FAILURE_REASON',
] as const;

/** Commands that take a header name (`%REQ(X-USER)%`, `%REQ(A?B)%`, `%REQ(X):10%`). */
export const HEADER_COMMANDS = ['REQ', 'RESP', 'TRAILER'] as const;

const plain = new Set<string>(PLAIN_COMMANDS);
const header = new Set<string>(HEADER_COMMANDS);
const headerName = /^:?[A-Za-z0-9!#$&'*+.^_`|~-]+$/;

/** The reason a format string would not be accepted, or undefined when it is fine. */
export function formatProblem(format: string): string | undefined {
  // %COMMAND%, %COMMAND(ARG)%, %COMMAND(ARG):LEN%; anything else with a % is refused.
  const command = /%([A-Z_]+)(?:\(([^)]*)\))?(?::(\d+))?%/y;
  let i = 0;
  while (i < format.length) {
    const at = format.indexOf('%', i);
    if (at === -1) break;
    command.lastIndex = at;
    const m = command.exec(format);
    if (!m) return `a '%' at position ${at} starts no command (write %COMMAND% or %REQ(HEADER)%)`;
    const [, name, arg] = m;
    if (header.has(name)) {
      if (arg === undefined) return `%${name}% needs a header name, e.g. %${name}(X-REQUEST-ID)%`;
      for (const h of arg.split('?')) if (!headerName.test(h)) return `%${name}(${arg})%: ${JSON.stringify(h)} is not a header name`;
      if (arg.split('?').length > 2) return `%${name}(${arg})%: at most one alternative header (A?B)`;
    } else if (name === 'START_TIME') {
      // An optional strftime format; a ')' cannot appear in it.
    } else if (plain.has(name)) {
      if (arg !== undefined) return `%${name}% takes no argument`;
    } else {
      return `unknown command %${name}% (known: ${[...PLAIN_COMMANDS, ...HEADER_COMMANDS.map((h) => `${h}(HEADER)`)].join(', ')})`;
    }
    i = command.lastIndex;
  }
  return undefined;
}
