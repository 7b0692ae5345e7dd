// A tiny router for the admin API: method + path pattern ({param}) -> handler.
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface AdminRequest {
  req: IncomingMessage;
  params: Record<string, string>;
  url: URL;
  /** The raw body, already size-limited by the server (413 past the limit). */
  body: () => Promise<Buffer>;
}

export interface AdminResponse {
  status: number;
  /** Serialized as JSON unless `text` is given. */
  json?: unknown;
  text?: string;
  /** Bytes as they are (static files), sent with `contentType`. */
  body?: Buffer;
  contentType?: string;
  headers?: Record<string, string>;
  /** Takes the response over (server-sent events): nothing else is written. */
  stream?: (req: IncomingMessage, res: ServerResponse) => void;
}

export type AdminHandler = (r: AdminRequest) => Promise<AdminResponse> | AdminResponse;

export interface AdminRoute {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  /** e.g. `/api/v1/services/{service}/instances/{id}`; a last segment `{name*}` takes
   *  the rest of the path (possibly empty, or several segments). */
  pattern: string;
  /** Mutations need the bearer token when one is configured. */
  mutates?: boolean;
  handler: AdminHandler;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code = 'TESSERA_ERR_BAD_REQUEST',
  ) {
    super(message);
  }
}

export function matchRoute(
  routes: readonly AdminRoute[],
  method: string,
  pathname: string,
): { route: AdminRoute; params: Record<string, string> } | { allowed: string[] } | undefined {
  const allowed: string[] = [];
  const segments = pathname.split('/');
  for (const route of routes) {
    const pattern = route.pattern.split('/');
    const rest = /^\{(\w+)\*\}$/.exec(pattern[pattern.length - 1])?.[1];
    if (rest ? segments.length < pattern.length : pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < pattern.length && ok; i++) {
      const p = pattern[i];
      if (rest && i === pattern.length - 1) params[rest] = segments.slice(i).join('/');
      else if (p.startsWith('{') && p.endsWith('}')) {
        let value: string;
        try {
          value = decodeURIComponent(segments[i]);
        } catch {
          throw new HttpError(400, `path segment ${i} is not valid percent-encoding`);
        }
        params[p.slice(1, -1)] = value;
      } else ok = p === segments[i];
    }
    if (!ok) continue;
    if (route.method === method) return { route, params };
    allowed.push(route.method);
  }
  return allowed.length > 0 ? { allowed } : undefined;
}
