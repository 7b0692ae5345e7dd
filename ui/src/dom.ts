// A few lines instead of a framework: elements from tag, attributes and children.
export type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;

function apply(el: Element, attrs: Attrs | undefined, children: Child[]): void {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (typeof value === 'function') el.addEventListener(name.replace(/^on/, ''), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  const add = (c: Child) => {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) c.forEach(add);
    else el.append(c instanceof Node ? c : String(c));
  };
  children.forEach(add);
}

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  apply(el, attrs, children);
  return el;
}

export function s<K extends keyof SVGElementTagNameMap>(tag: K, attrs?: Attrs, ...children: Child[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  apply(el, attrs, children);
  return el;
}

/** "12 s ago", "3 min ago": how old a timestamp is, for people. */
export function ago(iso: string | undefined | null, now = Date.now()): string {
  if (!iso) return '—';
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} d ago`;
}

/** A relative time that stays true: `tickTimes` rewrites it in place, so the page
 *  need not be rebuilt (and hovered or selected elements replaced) just to age it. */
export function since(iso: string | undefined | null): HTMLElement {
  return h('span', { 'data-since': iso ?? '' }, ago(iso));
}

export function tickTimes(root: ParentNode): void {
  const now = Date.now();
  for (const el of root.querySelectorAll<HTMLElement>('[data-since]')) el.textContent = ago(el.dataset.since, now);
}

export function clock(iso: string | undefined | null): string {
  return iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : '';
}

/** A colored label; `state` is also exposed as data-state for tests and styling. */
export function badge(state: string, text: string, title?: string): HTMLElement {
  return h('span', { class: `badge badge-${state}`, 'data-state': state, title }, text);
}

/** What to show when a list is empty: what it means and what to do about it. */
export function empty(what: string, todo: Child): HTMLElement {
  return h('div', { class: 'empty' }, h('strong', {}, what), h('div', {}, todo));
}
