// The service graph: one box per service, colored by the health of its instances, and
// edges either from the proxies' own traffic stats (GET /api/v1/traffic) or, while the
// control plane has none, the edges the routes declare (parent -> backend), dashed.
import type { ConfigResource, Service, Traffic } from '../api.ts';
import { empty, h, s } from '../dom.ts';

interface GraphNode {
  key: string;
  name: string;
  namespace: string;
  health: 'healthy' | 'degraded' | 'unhealthy' | 'none';
  instances: string;
}

interface GraphEdge {
  from: string;
  to: string;
  kind: 'traffic' | 'declared';
  label?: string;
  state: 'ok' | 'warn' | 'bad' | 'declared';
  width: number;
}

const W = 150;
const H = 46;
const ROW_GAP = 26;
const PAD = 24;

const key = (service: string, namespace = 'default') => `${namespace}/${service}`;

export function renderGraph(services: Service[], resources: ConfigResource[], traffic: Traffic | undefined): Node[] {
  const nodes = new Map<string, GraphNode>();
  const namespaceOf = new Map(resources.filter((r) => r.kind === 'Service').map((r) => [r.name, r.namespace]));
  for (const svc of services) {
    const healthy = svc.instances.filter((i) => i.health === 'healthy').length;
    const total = svc.instances.length;
    const namespace = namespaceOf.get(svc.name) ?? 'default';
    nodes.set(key(svc.name, namespace), {
      key: key(svc.name, namespace),
      name: svc.name,
      namespace,
      health: total === 0 ? 'none' : healthy === total ? 'healthy' : healthy === 0 ? 'unhealthy' : 'degraded',
      instances: total === 0 ? 'no instances' : `${healthy}/${total} healthy`,
    });
  }
  const ensure = (service: string, namespace: string) => {
    const k = key(service, namespace);
    if (!nodes.has(k)) nodes.set(k, { key: k, name: service, namespace, health: 'none', instances: 'not in the registry' });
    return k;
  };

  const edges: GraphEdge[] = [];
  if (traffic) {
    const max = Math.max(1, ...traffic.edges.map((e) => e.requests));
    for (const e of traffic.edges) {
      const errorRate = e.requests > 0 ? e.errors5xx / e.requests : 0;
      const rate = e.requests / Math.max(1, traffic.windowSeconds);
      edges.push({
        from: ensure(e.from.service, e.from.namespace),
        to: ensure(e.to.service, e.to.namespace),
        kind: 'traffic',
        state: errorRate >= 0.05 ? 'bad' : errorRate > 0 ? 'warn' : 'ok',
        width: 1.5 + 4 * (e.requests / max),
        label: `${rate >= 10 ? Math.round(rate) : rate.toFixed(1)} req/s · ${(errorRate * 100).toFixed(errorRate > 0 && errorRate < 0.1 ? 1 : 0)}% 5xx${e.p99Ms !== null ? ` · p99 ${Math.round(e.p99Ms)} ms` : ''}`,
      });
    }
  } else {
    const seen = new Set<string>();
    for (const r of resources) {
      if (r.kind !== 'HTTPRoute' && r.kind !== 'GRPCRoute') continue;
      for (const parent of r.spec.parents ?? []) {
        for (const rule of r.spec.rules ?? []) {
          for (const b of rule.backends) {
            const from = ensure(parent.service, parent.namespace);
            const to = ensure(b.service, b.namespace);
            if (seen.has(`${from}>${to}`)) continue;
            seen.add(`${from}>${to}`);
            edges.push({ from, to, kind: 'declared', state: 'declared', width: 1.5 });
          }
        }
      }
    }
  }

  const caption = traffic
    ? h('p', { class: 'hint' }, `Edges: requests between services over the last ${traffic.windowSeconds} s, from the proxies' own stats. Red: 5% or more 5xx.`)
    : h(
        'p',
        { class: 'hint', 'data-edges': 'declared' },
        s('svg', { class: 'legend-line', width: 28, height: 8 }, s('line', { x1: 0, y1: 4, x2: 28, y2: 4 })),
        h('strong', {}, 'declared (no traffic data)'),
        ': dashed edges are what the routes declare (route parent → backend); this control plane reports no traffic stats yet.',
      );
  if (nodes.size === 0) return [empty('No services to draw.', 'Services appear here once the config declares them or instances register.')];
  // Measured edges carry a label between the columns: give it room.
  return [caption, draw([...nodes.values()], edges, traffic ? 170 : 110)];
}

/** Columns by distance from the services nothing points at; cycles stay in column 0. */
function layout(nodes: GraphNode[], edges: GraphEdge[], gap: number): Map<string, { x: number; y: number }> {
  const incoming = new Map(nodes.map((n) => [n.key, 0]));
  for (const e of edges) if (e.from !== e.to) incoming.set(e.to, (incoming.get(e.to) ?? 0) + 1);
  const depth = new Map<string, number>();
  const queue = nodes.filter((n) => incoming.get(n.key) === 0).map((n) => n.key);
  for (const k of queue) depth.set(k, 0);
  // Longest path, bounded by the node count so a cycle cannot loop forever.
  for (let round = 0; round < nodes.length; round++) {
    let moved = false;
    for (const e of edges) {
      if (e.from === e.to || !depth.has(e.from)) continue;
      const d = depth.get(e.from)! + 1;
      if (d > (depth.get(e.to) ?? -1) && d < nodes.length) {
        depth.set(e.to, d);
        moved = true;
      }
    }
    if (!moved) break;
  }
  const columns = new Map<number, GraphNode[]>();
  for (const n of nodes) {
    const d = depth.get(n.key) ?? 0;
    if (!columns.has(d)) columns.set(d, []);
    columns.get(d)!.push(n);
  }
  const at = new Map<string, { x: number; y: number }>();
  for (const [d, list] of columns) {
    list.sort((a, b) => a.name.localeCompare(b.name));
    list.forEach((n, i) => {
      at.set(n.key, { x: PAD + d * (W + gap), y: PAD + 18 + i * (H + ROW_GAP) });
    });
  }
  return at;
}

function draw(nodes: GraphNode[], edges: GraphEdge[], gap: number): SVGSVGElement {
  const at = layout(nodes, edges, gap);
  const width = Math.max(...[...at.values()].map((p) => p.x)) + W + PAD;
  const height = Math.max(...[...at.values()].map((p) => p.y)) + H + PAD;
  const svg = s('svg', { class: 'graph', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'service graph' });
  svg.append(
    s(
      'defs',
      {},
      ['ok', 'warn', 'bad', 'declared'].map((state) =>
        s('marker', { id: `arrow-${state}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' }, s('path', { d: 'M0,0 L10,5 L0,10 z', class: `arrow arrow-${state}` })),
      ),
    ),
  );
  const nameOf = new Map(nodes.map((n) => [n.key, n.name]));
  for (const e of edges) {
    const a = at.get(e.from)!;
    const b = at.get(e.to)!;
    let d: string;
    let mid: { x: number; y: number };
    if (e.from === e.to) {
      d = `M${a.x + W - 30},${a.y} C${a.x + W - 20},${a.y - 34} ${a.x + W + 24},${a.y - 10} ${a.x + W},${a.y + 12}`;
      mid = { x: a.x + W + 4, y: a.y - 16 };
    } else if (b.x > a.x) {
      const [x1, y1, x2, y2] = [a.x + W, a.y + H / 2, b.x, b.y + H / 2];
      d = `M${x1},${y1} C${x1 + gap / 2},${y1} ${x2 - gap / 2},${y2} ${x2},${y2}`;
      mid = { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 8 };
    } else {
      // Same column or backwards: around the right-hand side.
      const [x1, y1, x2, y2] = [a.x + W, a.y + H / 2, b.x + W, b.y + H / 2];
      const bulge = Math.max(x1, x2) + 50;
      d = `M${x1},${y1} C${bulge},${y1} ${bulge},${y2} ${x2},${y2}`;
      mid = { x: bulge - 10, y: (y1 + y2) / 2 };
    }
    const title = `${nameOf.get(e.from)} → ${nameOf.get(e.to)}${e.kind === 'declared' ? ': declared by a route (no traffic data)' : `: ${e.label}`}`;
    svg.append(
      s(
        'g',
        { class: `edge edge-${e.state}`, 'data-edge': `${nameOf.get(e.from)}->${nameOf.get(e.to)}`, 'data-kind': e.kind },
        s('title', {}, title),
        s('path', { d, 'stroke-width': e.width, 'marker-end': `url(#arrow-${e.state})`, fill: 'none' }),
        e.label ? s('text', { x: mid.x, y: mid.y, 'text-anchor': 'middle', class: 'edge-label' }, e.label) : null,
      ),
    );
  }
  for (const n of nodes) {
    const p = at.get(n.key)!;
    svg.append(
      s(
        'g',
        { class: `node node-${n.health}`, 'data-service': n.name, 'data-health': n.health, transform: `translate(${p.x},${p.y})` },
        s('title', {}, `${n.name} (${n.namespace}): ${n.instances}`),
        s('rect', { width: W, height: H, rx: 8 }),
        s('text', { x: 12, y: 19, class: 'node-name' }, n.name.length > 18 ? `${n.name.slice(0, 17)}…` : n.name),
        s('text', { x: 12, y: 36, class: 'node-sub' }, n.namespace === 'default' ? n.instances : `${n.namespace} · ${n.instances}`),
      ),
    );
  }
  return svg;
}
