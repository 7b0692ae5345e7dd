// JSON schemas of the config kinds. Every object closes its properties, so a
// misspelt field is an error ("unknown field"), not a silent default.
const str = { type: 'string' } as const;
const int = (minimum = 0, maximum = 2 ** 31 - 1) => ({ type: 'integer', minimum, maximum }) as const;
const port = int(1, 65535);
const duration = { type: 'string', pattern: '^([0-9]{1,5}(h|m|s|ms)){1,4}$' } as const;
const obj = (properties: Record<string, unknown>, required: string[] = []) => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
});
const list = (items: unknown, extra: Record<string, unknown> = {}) => ({ type: 'array', items, ...extra });
const stringMap = { type: 'object', additionalProperties: str };

const dnsLabel = { type: 'string', pattern: '^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$' } as const;
const metadata = obj(
  {
    name: { type: 'string', minLength: 1, maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' },
    namespace: dnsLabel,
    labels: stringMap,
    annotations: stringMap,
    uid: str,
    resourceVersion: str,
    generation: int(),
    creationTimestamp: str,
  },
  ['name'],
);
const head = (apiVersion: unknown, kind: string) => ({ apiVersion, kind: { const: kind }, metadata });

const serviceSchema = obj(
  {
    ...head({ const: 'v1' }, 'Service'),
    spec: obj(
      {
        ports: list(
          obj({
            name: dnsLabel,
            port,
            targetPort: port,
            protocol: { enum: ['TCP'] },
            appProtocol: { enum: ['http', 'http2', 'grpc', 'tcp', 'kubernetes.io/h2c'] },
          }, ['port']),
          { minItems: 1 },
        ),
        // Accepted because users paste them from real manifests; the mesh does not use them.
        selector: stringMap,
        type: str,
        clusterIP: str,
        clusterIPs: list(str),
        ipFamilies: list(str),
        ipFamilyPolicy: str,
        sessionAffinity: str,
        internalTrafficPolicy: str,
      },
      ['ports'],
    ),
    status: { type: 'object' },
  },
  ['apiVersion', 'kind', 'metadata', 'spec'],
);

const endpointSliceSchema = obj(
  {
    ...head({ const: 'discovery.k8s.io/v1' }, 'EndpointSlice'),
    addressType: { enum: ['IPv4', 'IPv6', 'FQDN'] },
    endpoints: list(
      obj({
        addresses: list(str, { minItems: 1 }),
        conditions: obj({ ready: { type: 'boolean' }, serving: { type: 'boolean' }, terminating: { type: 'boolean' } }),
        zone: str,
        nodeName: str,
        hostname: str,
        targetRef: { type: 'object' },
      }, ['addresses']),
    ),
    ports: list(obj({ name: str, port, protocol: { enum: ['TCP'] }, appProtocol: str }, ['port']), { minItems: 1 }),
  },
  ['apiVersion', 'kind', 'metadata', 'addressType', 'endpoints', 'ports'],
);

const gatewayApiVersion = { enum: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1', 'gateway.networking.k8s.io/v1alpha2'] };
const serviceRef = {
  group: { enum: ['', 'core'] },
  kind: { const: 'Service' },
  name: dnsLabel,
  namespace: dnsLabel,
  port,
};
const parentRef = obj({ ...serviceRef, sectionName: str }, ['name']);
const backendRef = obj({ ...serviceRef, weight: int(0, 1_000_000), filters: list({ type: 'object' }) }, ['name']);
const stringMatch = (types: string[]) => obj({ type: { enum: types }, name: { type: 'string', minLength: 1 }, value: str }, ['name', 'value']);
const headerModifier = obj({
  set: list(obj({ name: str, value: str }, ['name', 'value'])),
  add: list(obj({ name: str, value: str }, ['name', 'value'])),
  remove: list(str),
});
const pathModifier = obj(
  { type: { enum: ['ReplaceFullPath', 'ReplacePrefixMatch'] }, replaceFullPath: str, replacePrefixMatch: str },
  ['type'],
);
const filter = obj(
  {
    type: { enum: ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'URLRewrite', 'RequestRedirect'] },
    requestHeaderModifier: headerModifier,
    responseHeaderModifier: headerModifier,
    requestMirror: obj({ backendRef: obj(serviceRef, ['name']), percent: int(0, 100) }, ['backendRef']),
    urlRewrite: obj({ hostname: str, path: pathModifier }),
    requestRedirect: obj({
      scheme: { enum: ['http', 'https'] },
      hostname: str,
      path: pathModifier,
      port,
      statusCode: { enum: [301, 302, 303, 307, 308] },
    }),
  },
  ['type'],
);
const timeouts = obj({ request: duration, backendRequest: duration });
const routeRetry = obj({ attempts: int(0, 100), codes: list(int(400, 599)), backoff: duration });

const httpRouteSchema = obj(
  {
    ...head(gatewayApiVersion, 'HTTPRoute'),
    spec: obj(
      {
        parentRefs: list(parentRef, { minItems: 1 }),
        hostnames: list(str),
        rules: list(
          obj({
            name: str,
            matches: list(
              obj({
                path: obj({ type: { enum: ['Exact', 'PathPrefix', 'RegularExpression'] }, value: str }),
                headers: list(stringMatch(['Exact', 'RegularExpression'])),
                queryParams: list(stringMatch(['Exact', 'RegularExpression'])),
                method: { enum: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] },
              }),
            ),
            backendRefs: list(backendRef),
            filters: list(filter),
            timeouts,
            retry: routeRetry,
          }),
        ),
      },
      ['parentRefs'],
    ),
    status: { type: 'object' },
  },
  ['apiVersion', 'kind', 'metadata', 'spec'],
);

const grpcRouteSchema = obj(
  {
    ...head(gatewayApiVersion, 'GRPCRoute'),
    spec: obj(
      {
        parentRefs: list(parentRef, { minItems: 1 }),
        hostnames: list(str),
        rules: list(
          obj({
            name: str,
            matches: list(
              obj({
                method: obj({ type: { enum: ['Exact', 'RegularExpression'] }, service: str, method: str }),
                headers: list(stringMatch(['Exact', 'RegularExpression'])),
              }),
            ),
            backendRefs: list(backendRef),
            filters: list(filter),
            timeouts,
            retry: routeRetry,
          }),
        ),
      },
      ['parentRefs'],
    ),
    status: { type: 'object' },
  },
  ['apiVersion', 'kind', 'metadata', 'spec'],
);

const tesseraApiVersion = { const: 'tessera.dev/v1alpha1' };
const targetRef = obj({ group: { enum: ['', 'core'] }, kind: { const: 'Service' }, name: dnsLabel, namespace: dnsLabel }, ['name']);

const trafficPolicySchema = obj(
  {
    ...head(tesseraApiVersion, 'TrafficPolicy'),
    spec: obj(
      {
        targetRefs: list(targetRef, { minItems: 1 }),
        connectTimeout: duration,
        timeout: duration,
        retry: obj({
          attempts: int(0, 100),
          codes: list(int(400, 599)),
          retryOn: list(str),
          perTryTimeout: duration,
          backoff: obj({ baseInterval: duration, maxInterval: duration }, ['baseInterval']),
        }),
        connectionPool: obj({ maxConnections: int(1), maxPendingRequests: int(1), maxRequests: int(1), maxRetries: int(0) }),
        outlierDetection: obj({ consecutive5xxErrors: int(1), interval: duration, baseEjectionTime: duration, maxEjectionPercent: int(0, 100) }),
        loadBalancer: obj(
          {
            policy: { enum: ['RoundRobin', 'LeastRequest', 'Random', 'RingHash'] },
            hashOn: obj({ header: str, cookie: str, sourceIp: { type: 'boolean' } }),
          },
          ['policy'],
        ),
        healthCheck: obj({
          http: { type: 'string', pattern: '^/' },
          tcp: { type: 'boolean' },
          grpc: { type: 'boolean' },
          interval: duration,
          timeout: duration,
          healthyThreshold: int(1, 100),
          unhealthyThreshold: int(1, 100),
        }),
      },
      ['targetRefs'],
    ),
  },
  ['apiVersion', 'kind', 'metadata', 'spec'],
);

const meshConfigSchema = obj(
  {
    ...head(tesseraApiVersion, 'MeshConfig'),
    // Without targetRefs: the mesh-wide settings. With targetRefs: the mtls mode of
    // those Services only (trustDomain and certificateLifetime are mesh-wide).
    spec: obj({
      targetRefs: list(targetRef, { minItems: 1 }),
      trustDomain: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$' },
      mtls: obj({ mode: { enum: ['STRICT', 'PERMISSIVE', 'DISABLE'] } }, ['mode']),
      certificateLifetime: duration,
    }),
  },
  ['apiVersion', 'kind', 'metadata'],
);

// Istio's AuthorizationPolicy with `from`/`to` entries flattened (no `source:` or
// `operation:` wrapper), as DESIGN.md writes it. Lists are never empty: an empty list
// reads as "nothing" to some and "anything" to others.
const nonEmpty = (items: unknown) => list(items, { minItems: 1 });
const names = nonEmpty({ type: 'string', minLength: 1 });
const methods = nonEmpty({ enum: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] });
const authorizationPolicySchema = obj(
  {
    ...head(tesseraApiVersion, 'AuthorizationPolicy'),
    spec: obj({
      targetRefs: list(targetRef, { minItems: 1 }),
      action: { enum: ['ALLOW', 'DENY'] },
      rules: list(
        obj({
          from: nonEmpty(
            obj({
              principals: names,
              notPrincipals: names,
              serviceAccounts: names,
              notServiceAccounts: names,
              namespaces: nonEmpty(dnsLabel),
              notNamespaces: nonEmpty(dnsLabel),
            }),
          ),
          to: nonEmpty(
            obj({ methods, notMethods: methods, paths: names, notPaths: names, ports: nonEmpty(port), notPorts: nonEmpty(port) }),
          ),
          when: nonEmpty(obj({ key: { type: 'string', minLength: 1 }, values: names, notValues: names }, ['key'])),
        }),
      ),
    }),
  },
  ['apiVersion', 'kind', 'metadata', 'spec'],
);

const telemetrySchema = obj(
  {
    ...head(tesseraApiVersion, 'Telemetry'),
    spec: obj({
      // Absent: mesh-wide. Present: overrides the mesh-wide Telemetry for these services.
      targetRefs: list(targetRef, { minItems: 1 }),
      accessLog: obj({
        disabled: { type: 'boolean' },
        path: { type: 'string', minLength: 1, maxLength: 4096 },
        fields: { type: 'object', additionalProperties: { type: 'string', minLength: 1, maxLength: 1024 }, maxProperties: 64 },
      }),
      tracing: obj({
        disabled: { type: 'boolean' },
        otlp: obj({ address: { type: 'string', minLength: 1, maxLength: 260 } }, ['address']),
        samplingPercent: { type: 'number', minimum: 0, maximum: 100 },
        serviceName: { type: 'string', minLength: 1, maxLength: 253 },
      }),
    }),
  },
  ['apiVersion', 'kind', 'metadata', 'spec'],
);

const canaryBackend = obj({ name: dnsLabel }, ['name']);
const canarySchema = obj(
  {
    ...head(tesseraApiVersion, 'Canary'),
    spec: obj(
      {
        targetRef,
        stable: canaryBackend,
        canary: canaryBackend,
        strategy: { enum: ['Canary', 'BlueGreen', 'ParallelRun'] },
        steps: list(int(1, 100), { minItems: 1, maxItems: 100 }),
        // A/B and BlueGreen: the test traffic (an HTTPRoute match's headers) or a mirror, and how many passing intervals.
        match: list(obj({ headers: list(stringMatch(['Exact', 'RegularExpression']), { minItems: 1 }) }, ['headers']), { minItems: 1 }),
        mirror: { type: 'boolean' },
        iterations: int(1, 1000),
        interval: duration,
        analysis: obj({
          successRate: obj({ min: { type: 'number', minimum: 0, maximum: 100 } }, ['min']),
          latencyP99: obj({ max: duration }, ['max']),
          maxMismatchPercent: { type: 'number', minimum: 0, maximum: 100 },
          minRequests: int(0, 1_000_000_000),
          failureLimit: int(1, 1000),
          // Absent: the sidecars' own metrics. The address is checked (http or https) by convert.ts at its line.
          provider: obj(
            {
              prometheus: obj(
                {
                  address: { type: 'string', minLength: 1, maxLength: 2048 },
                  timeout: duration,
                  // PromQL templates; their placeholders are checked by convert-analysis-provider.ts at their line.
                  successRateQuery: { type: 'string', minLength: 1, maxLength: 4096 },
                  latencyP99Query: { type: 'string', minLength: 1, maxLength: 4096 },
                },
                ['address'],
              ),
            },
            ['prometheus'],
          ),
        }),
        parallelRun: obj({
          methods: list({ enum: ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE'] }, { minItems: 1, uniqueItems: true }),
          headers: list({ type: 'string', pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$' }, { maxItems: 50, uniqueItems: true }),
          percent: int(1, 100),
        }),
      },
      // steps: required by strategy Canary without match, refused for BlueGreen and ParallelRun (convert.ts says so at its line).
      ['targetRef', 'stable', 'canary', 'interval'],
    ),
    status: { type: 'object' },
  },
  ['apiVersion', 'kind', 'metadata', 'spec'],
);

/** kind -> apiVersions it may come with, and its schema. */
export const KINDS: Record<string, { apiVersions: string[]; schema: object }> = {
  Service: { apiVersions: ['v1'], schema: serviceSchema },
  EndpointSlice: { apiVersions: ['discovery.k8s.io/v1'], schema: endpointSliceSchema },
  HTTPRoute: { apiVersions: gatewayApiVersion.enum, schema: httpRouteSchema },
  GRPCRoute: { apiVersions: gatewayApiVersion.enum, schema: grpcRouteSchema },
  TrafficPolicy: { apiVersions: ['tessera.dev/v1alpha1'], schema: trafficPolicySchema },
  MeshConfig: { apiVersions: ['tessera.dev/v1alpha1'], schema: meshConfigSchema },
  AuthorizationPolicy: { apiVersions: ['tessera.dev/v1alpha1'], schema: authorizationPolicySchema },
  Telemetry: { apiVersions: ['tessera.dev/v1alpha1'], schema: telemetrySchema },
  Canary: { apiVersions: ['tessera.dev/v1alpha1'], schema: canarySchema },
};
