import type { ProxyView, TypeStatus } from '../api.ts';
import { badge, clock, empty, h, since } from '../dom.ts';

const TYPE_ORDER = ['CDS', 'EDS', 'LDS', 'RDS', 'SDS'];

/** Whether a proxy accepted the last thing it was sent of a type: the newest answer
 *  (ACK or NACK, by nonce) against the newest push. */
export function syncState(t: TypeStatus): 'acked' | 'nacked' | 'pending' {
  const sent = Number(t.sentNonce ?? 0);
  const acked = Number(t.ackedNonce ?? -1);
  const nacked = t.lastNack ? Number(t.lastNack.nonce) : -1;
  if (Math.max(acked, nacked) < sent) return 'pending';
  return nacked > acked ? 'nacked' : 'acked';
}

export function renderProxies(proxies: ProxyView[]): Node[] {
  if (proxies.length === 0) {
    return [
      empty(
        'No proxies are connected.',
        h('span', {}, 'Start a sidecar next to an app, e.g. ', h('code', {}, 'npx tessera sidecar --service reviews --app-port 8080 --inbound-port 9080'), ', or point an Envoy or gRPC client at the xDS port.'),
      ),
    ];
  }
  const types = [...new Set(proxies.flatMap((p) => Object.keys(p.types)))].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  // With thousands of proxies, the ones that need a look come first and the rest are counted.
  const order = { nacked: 0, pending: 1, acked: 2 };
  const shown = [...proxies].sort((a, b) => order[overallState(a)] - order[overallState(b)]).slice(0, SHOWN_PROXIES);
  return [
    h(
      'table',
      { class: 'proxies' },
      h('thead', {}, h('tr', {}, h('th', {}, 'proxy'), h('th', {}, 'connected'), types.map((t) => h('th', {}, t)))),
      h(
        'tbody',
        {},
        shown.flatMap((p) => {
          const overall = overallState(p);
          const row = h(
            'tr',
            { 'data-node': p.nodeId, 'data-state': overall },
            h(
              'td',
              {},
              h('div', { class: 'mono' }, p.nodeId),
              h('div', { class: 'muted small' }, [p.service && `service ${p.service}`, p.protocol === 'delta' ? 'delta xDS' : 'SotW xDS', p.userAgent].filter(Boolean).join(' · ')),
            ),
            h('td', { class: 'small', title: p.connectedSince }, since(p.connectedSince)),
            types.map((type) => h('td', { 'data-type': type }, typeCell(p.types[type]))),
          );
          // Envoy's own words about what it refused, under the proxy, across the table.
          const refused = types.filter((type) => p.types[type] && syncState(p.types[type]) === 'nacked');
          if (refused.length === 0) return [row];
          row.classList.add('has-nack');
          return [
            row,
            h(
              'tr',
              { class: 'nack-row', 'data-node-nack': p.nodeId },
              h(
                'td',
                { colspan: 2 + types.length, class: 'wrap' },
                refused.map((type) => h('div', { class: 'error-text small' }, h('strong', {}, `${type} refused: `), p.types[type].lastNack?.error ?? '')),
              ),
            ),
          ];
        }),
      ),
    ),
    ...(proxies.length > shown.length
      ? [h('div', { class: 'muted small' }, `${proxies.length - shown.length} more proxies not shown (NACKed and pending ones come first): GET /api/v1/proxies`)]
      : []),
  ];
}

const SHOWN_PROXIES = 200;

function overallState(p: ProxyView): 'acked' | 'nacked' | 'pending' {
  const states = Object.values(p.types).map(syncState);
  return states.includes('nacked') ? 'nacked' : states.includes('pending') ? 'pending' : 'acked';
}

function typeCell(t: TypeStatus | undefined): Node {
  if (!t) return h('span', { class: 'muted' }, '—');
  const state = syncState(t);
  if (state === 'nacked') {
    return badge('nacked', 'NACK', t.lastNack?.error);
  }
  if (state === 'pending') return badge('pending', 'pending', `version ${t.sentVersion} sent at ${clock(t.sentAt)}, not answered yet`);
  return badge('acked', 'ACK', `version ${t.ackedVersion}, ACKed at ${clock(t.ackedAt)}${t.lastNack ? `; an earlier version was NACKed: ${t.lastNack.error}` : ''}`);
}

function rank(type: string): number {
  const i = TYPE_ORDER.indexOf(type);
  return i === -1 ? TYPE_ORDER.length : i;
}
