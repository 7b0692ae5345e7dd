import type { ChangeDetail, ChangeSummary } from '../api.ts';
import { badge, clock, empty, h, since } from '../dom.ts';

export type ChangeState = 'applied' | 'pending' | 'nacked' | 'disconnected' | 'unaffected';

export function changeState(c: ChangeSummary): ChangeState {
  if (c.nacked > 0) return 'nacked';
  if (c.pending > 0) return 'pending';
  if (c.disconnected > 0) return 'disconnected';
  return c.affected === 0 ? 'unaffected' : 'applied';
}

const STATE_TEXT: Record<ChangeState, string> = {
  applied: 'applied',
  pending: 'pending',
  nacked: 'NACKed',
  disconnected: 'proxy left',
  unaffected: 'no proxy affected',
};

const KIND_TEXT: Record<ChangeSummary['kind'], string> = {
  config: 'config edit',
  registration: 'service registered or removed',
  endpoints: 'instances or health',
  retirement: 'old clusters retired',
};

export interface ChangesViewState {
  /** Versions whose proxy list the user opened. */
  open: Set<string>;
  details: Map<string, ChangeDetail>;
  onToggle: (version: string, open: boolean) => void;
}

export const SHOWN_CHANGES = 25;

export function renderChanges(changes: ChangeSummary[], view: ChangesViewState): Node[] {
  if (changes.length === 0) {
    return [empty('No changes yet.', 'Edit a file in the config dir or register an instance: each change shows up here and turns "applied" once every proxy it affects has ACKed it.')];
  }
  return [
    h(
      'ol',
      { class: 'changes' },
      changes.slice(0, SHOWN_CHANGES).map((c) => {
        const state = changeState(c);
        const detail = view.details.get(c.version);
        const details = h(
          'details',
          { open: view.open.has(c.version) },
          h(
            'summary',
            {},
            badge(state, STATE_TEXT[state]),
            h('span', { class: 'change-version mono' }, `#${c.version}`),
            h('span', { class: 'change-what' }, describe(c)),
            h('span', { class: 'change-counts small' }, counts(c)),
            h('span', { class: 'muted small change-when', title: c.appliedAt }, `${clock(c.appliedAt)} · `, since(c.appliedAt)),
          ),
          detail ? proxyList(detail) : view.open.has(c.version) ? h('div', { class: 'muted small' }, 'loading…') : null,
        );
        details.addEventListener('toggle', () => view.onToggle(c.version, details.open));
        return h('li', { class: `change change-${state}`, 'data-change-version': c.version, 'data-status': state }, details);
      }),
    ),
    changes.length > SHOWN_CHANGES ? h('div', { class: 'muted small' }, `${changes.length - SHOWN_CHANGES} older changes: GET /api/v1/changes`) : null,
  ].filter((n) => n !== null);
}

function describe(c: ChangeSummary): string {
  const what = KIND_TEXT[c.kind] ?? c.kind;
  if (c.kind === 'config' && c.note?.configVersion) return `${what} (config ${c.note.configVersion.slice(0, 8)})`;
  if (c.services.length > 0) return `${what}: ${c.services.map((s) => s.replace(/\.default$/, '')).join(', ')}`;
  return what;
}

function counts(c: ChangeSummary): string {
  if (c.affected === 0) return '0 proxies';
  const parts = [`${c.acked}/${c.affected} ACKed`];
  if (c.nacked) parts.push(`${c.nacked} NACKed`);
  if (c.pending) parts.push(`${c.pending} pending`);
  if (c.disconnected) parts.push(`${c.disconnected} disconnected`);
  return parts.join(' · ');
}

function proxyList(detail: ChangeDetail): HTMLElement {
  if (detail.proxies.length === 0) return h('div', { class: 'muted small' }, 'No connected proxy holds what this change touched, so none had to take it.');
  return h(
    'ul',
    { class: 'change-proxies' },
    detail.proxies.map((p) =>
      h(
        'li',
        { 'data-node': p.nodeId, 'data-status': p.status },
        badge(p.status, p.status === 'acked' ? 'ACKed' : p.status === 'nacked' ? 'NACKed' : p.status),
        h('span', { class: 'mono' }, p.nodeId),
        h(
          'span',
          { class: 'muted small' },
          Object.entries(p.types)
            .map(([type, d]) => `${type}${d.latencyMs !== undefined ? ` ${d.latencyMs} ms` : ''}`)
            .join(', '),
        ),
        Object.entries(p.types)
          .filter(([, d]) => d.error)
          .map(([type, d]) => h('div', { class: 'error-text small' }, `${type}: ${d.error}`)),
      ),
    ),
  );
}
