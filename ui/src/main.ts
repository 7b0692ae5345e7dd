// The dashboard: fetches the admin API's JSON, renders it, and fetches again what a
// server-sent event from /api/v1/events says changed. Read-only: it never mutates.
import './style.css';
import { getJson, getTraffic, type ChangeDetail, type ChangeSummary, type ConfigView, type ProxyView, type Service, type Traffic } from './api.ts';
import { h, tickTimes } from './dom.ts';
import { changeState, renderChanges, SHOWN_CHANGES, type ChangesViewState } from './views/changes.ts';
import { renderConfig } from './views/config.ts';
import { renderGraph } from './views/graph.ts';
import { renderProxies, syncState } from './views/proxies.ts';
import { renderServices } from './views/services.ts';

type Topic = 'services' | 'proxies' | 'changes' | 'config' | 'traffic';

const data: {
  services?: Service[];
  proxies?: ProxyView[];
  changes?: ChangeSummary[];
  config?: ConfigView;
  traffic?: Traffic;
} = {};

const byId = (id: string) => document.getElementById(id)!;

const changesView: ChangesViewState = {
  open: new Set(),
  details: new Map(),
  onToggle: (version, open) => {
    // A re-render recreates open <details>, which fire 'toggle' again: not a user's click.
    if (open === changesView.open.has(version)) return;
    if (open) {
      changesView.open.add(version);
      void loadDetail(version).then(render);
    } else changesView.open.delete(version);
  },
};
/** Counts a detail was fetched for, so it is fetched again only when they move. */
const detailFor = new Map<string, string>();

async function loadDetail(version: string): Promise<void> {
  const detail = await getJson<ChangeDetail>(`/api/v1/changes/${encodeURIComponent(version)}`).catch(() => undefined);
  if (!detail) return;
  changesView.details.set(version, detail);
  detailFor.set(version, signature(detail));
}

const signature = (c: ChangeSummary) => `${c.acked}/${c.nacked}/${c.pending}/${c.disconnected}`;

const loaders: Record<Topic, () => Promise<void>> = {
  services: async () => {
    data.services = (await getJson<{ services: Service[] }>('/api/v1/services')).services;
  },
  proxies: async () => {
    data.proxies = (await getJson<{ proxies: ProxyView[] }>('/api/v1/proxies')).proxies;
  },
  changes: async () => {
    data.changes = (await getJson<{ changes: ChangeSummary[] }>('/api/v1/changes')).changes;
    // The proxies of a change that did not apply everywhere are shown without a click
    // (a NACK's error is the point), as are the ones the user opened.
    const wanted = data.changes
      .slice(0, SHOWN_CHANGES)
      .filter((c) => changesView.open.has(c.version) || changeState(c) === 'nacked')
      .filter((c) => detailFor.get(c.version) !== signature(c));
    for (const c of wanted) if (changeState(c) === 'nacked') changesView.open.add(c.version);
    await Promise.all(wanted.map((c) => loadDetail(c.version)));
  },
  config: async () => {
    data.config = await getJson<ConfigView>('/api/v1/config');
  },
  traffic: async () => {
    data.traffic = await getTraffic();
  },
};

const ALL: Topic[] = ['services', 'proxies', 'changes', 'config', 'traffic'];
let inflight: Promise<void> | undefined;
const queued = new Set<Topic>();

/** Fetches the topics again; topics asked for meanwhile are fetched right after. */
function refresh(topics: Topic[]): void {
  for (const t of topics) if (t in loaders) queued.add(t);
  if (inflight) return;
  const batch = [...queued];
  queued.clear();
  inflight = Promise.all(batch.map((t) => loaders[t]()))
    .then(() => setUnreachable(undefined))
    .catch((err: Error) => setUnreachable(err.message))
    .finally(() => {
      inflight = undefined;
      render();
      if (queued.size > 0) refresh([]);
    });
}

function setUnreachable(message: string | undefined): void {
  const el = byId('unreachable');
  el.hidden = message === undefined;
  el.className = 'banner-error';
  el.textContent = message ? `Cannot read the control plane's admin API (${message}). Retrying; what is shown may be out of date.` : '';
}

/** What each panel was last built from: a panel is rebuilt only when that changes, so
 *  an update elsewhere does not replace what the user is hovering, reading or selecting. */
const builtFrom = new Map<string, string>();

function update(id: string, inputs: unknown, build: () => Node[]): void {
  const key = JSON.stringify(inputs);
  if (builtFrom.get(id) === key) return;
  builtFrom.set(id, key);
  byId(id).replaceChildren(...build());
}

function render(): void {
  const { config, services, proxies, changes, traffic } = data;
  if (config) update('config', config, () => renderConfig(config));
  if (services) update('services', services, () => renderServices(services));
  if (proxies) update('proxies', proxies, () => renderProxies(proxies));
  if (changes) update('changes', [changes, [...changesView.open], [...changesView.details]], () => renderChanges(changes, changesView));
  if (services && config) update('graph', [services, config.resources, traffic], () => renderGraph(services, config.resources, traffic));
  renderSummary();
}

function renderSummary(): void {
  const instances = data.services?.flatMap((s) => s.instances) ?? [];
  const unhealthy = instances.filter((i) => i.health === 'unhealthy').length;
  const proxies = data.proxies ?? [];
  const outOfSync = proxies.filter((p) => Object.values(p.types).some((t) => syncState(t) !== 'acked')).length;
  const refusing = proxies.filter((p) => Object.values(p.types).some((t) => syncState(t) === 'nacked')).length;
  const item = (state: string, text: string) => h('span', { class: `pill pill-${state}` }, text);
  const items = [
    item('neutral', `${data.services?.length ?? 0} services`),
    item(unhealthy > 0 ? 'bad' : 'ok', `${instances.length - unhealthy}/${instances.length} instances healthy`),
    item(outOfSync > 0 ? 'warn' : 'ok', `${proxies.length - outOfSync}/${proxies.length} proxies in sync`),
  ];
  if (refusing > 0) items.push(item('bad', `${refusing} ${refusing === 1 ? 'proxy refuses its' : 'proxies refuse their'} config (NACK)`));
  if (data.config?.errors.length) items.push(item('bad', 'config rejected'));
  byId('summary').replaceChildren(...items);
}

function connect(): void {
  const live = byId('live');
  const source = new EventSource('/api/v1/events');
  source.addEventListener('hello', () => {
    live.dataset.state = 'live';
    live.textContent = 'live';
    // Connected or reconnected: whatever happened while away is fetched now.
    refresh(ALL);
  });
  source.addEventListener('update', (e) => {
    const { topics } = JSON.parse((e as MessageEvent<string>).data) as { topics: Topic[] };
    refresh(topics);
  });
  source.addEventListener('error', () => {
    live.dataset.state = 'connecting';
    live.textContent = 'reconnecting…';
  });
}

refresh(ALL);
connect();
// Relative times ("12 s ago") move on their own; traffic stats have no event yet.
setInterval(() => tickTimes(document), 5000);
setInterval(() => refresh(['traffic']), 5000);
