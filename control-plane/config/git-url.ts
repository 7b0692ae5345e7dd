// `--config git+URL#BRANCH:PATH`: what it means, checked up front with messages that
// name the fix, and how a URL with credentials is shown (never with them).
import path from 'node:path';

export interface GitSourceSpec {
  /** What git is given: an http(s) or file URL, or an absolute local path. May hold credentials. */
  url: string;
  /** The URL as it may be shown anywhere (log, API, metrics): credentials replaced. */
  display: string;
  branch: string;
  /** Inside the repository, '' for its root; never absolute, never with '..'. */
  path: string;
  /** Literal strings that must never be shown (the userinfo of the URL and its parts). */
  secrets: string[];
}

export class GitSourceError extends Error {
  readonly code = 'TESSERA_ERR_GIT_SOURCE';
}

export const GIT_PREFIX = 'git+';

/** --git-interval: its default and bounds (a second is for tests and impatient demos). */
export const DEFAULT_GIT_INTERVAL_MS = 30_000;
export const MIN_GIT_INTERVAL_MS = 1000;
export const MAX_GIT_INTERVAL_MS = 24 * 3600_000;

export function isGitSource(config: string): boolean {
  return config.startsWith(GIT_PREFIX);
}

const EXAMPLE = 'git+https://host/org/repo.git#main:path/in/repo';

/** Parses `git+URL[#BRANCH][:PATH]`; BRANCH defaults to main, PATH to the repository root.
 *  `cwd` resolves a relative local path. */
export function parseGitSource(spec: string, cwd = process.cwd()): GitSourceSpec {
  if (!isGitSource(spec)) throw new GitSourceError(`a git config source starts with ${GIT_PREFIX} (e.g. ${EXAMPLE}), got ${JSON.stringify(spec)}`);
  const rest = spec.slice(GIT_PREFIX.length);
  const hashAt = rest.indexOf('#');
  const location = hashAt < 0 ? rest : rest.slice(0, hashAt);
  const fragment = hashAt < 0 ? '' : rest.slice(hashAt + 1);
  // A branch name cannot hold ':' (git check-ref-format), so the first one ends it.
  const colonAt = fragment.indexOf(':');
  const branch = (colonAt < 0 ? fragment : fragment.slice(0, colonAt)) || 'main';
  const subdir = colonAt < 0 ? '' : fragment.slice(colonAt + 1);
  if (location === '') throw new GitSourceError(`${JSON.stringify(spec)} names no repository (e.g. ${EXAMPLE})`);
  const { url, display, secrets } = parseLocation(location, cwd);
  checkBranch(branch);
  return { url, display, branch, path: checkPath(subdir), secrets };
}

function parseLocation(location: string, cwd: string): { url: string; display: string; secrets: string[] } {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(location)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    // scp-like `git@host:org/repo.git` is ssh; anything else without a scheme is a path.
    if (/^[^/\\]+@[^/:]+:/.test(location)) {
      throw new GitSourceError(`${JSON.stringify(location)} is an ssh address; Tessera fetches over https://, http://, file:// or a local path`);
    }
    if (/^[a-zA-Z][a-zA-Z0-9+.-]*::/.test(location)) {
      throw new GitSourceError(`git's transport::address form (${JSON.stringify(location.slice(0, location.indexOf('::') + 2))}) is not supported; use https://, http://, file:// or a local path`);
    }
    if (location.startsWith('-')) throw new GitSourceError(`a repository path may not start with '-': ${JSON.stringify(location)}`);
    const absolute = path.resolve(cwd, location);
    return { url: absolute, display: absolute, secrets: [] };
  }
  if (scheme !== 'https' && scheme !== 'http' && scheme !== 'file') {
    throw new GitSourceError(`git URL scheme ${scheme}:// is not supported; use https://, http://, file:// or a local path`);
  }
  let parsed: URL;
  try {
    parsed = new URL(location);
  } catch {
    throw new GitSourceError(`${JSON.stringify(redactText(location, []))} is not a valid URL`);
  }
  if (scheme === 'file') {
    if (parsed.username || parsed.password) throw new GitSourceError('a file:// URL cannot carry credentials');
    if (parsed.host !== '') throw new GitSourceError(`a file:// URL names a path on this machine (file:///srv/repo.git), not host ${JSON.stringify(parsed.host)}`);
    return { url: location, display: location, secrets: [] };
  }
  if (parsed.hostname === '') throw new GitSourceError(`${JSON.stringify(redactText(location, []))} names no host`);
  const secrets: string[] = [];
  if (parsed.username || parsed.password) {
    // The raw userinfo as typed, and its decoded parts: git may print any of them.
    // A username alone is often a token (https://TOKEN@github.com/…), so then it is secret too.
    const afterScheme = location.slice(location.indexOf('//') + 2);
    const authority = afterScheme.slice(0, afterScheme.search(/[/?#]|$/));
    const userinfo = authority.slice(0, authority.lastIndexOf('@'));
    const parts = parsed.password ? [parsed.password, safeDecode(parsed.password)] : [parsed.username, safeDecode(parsed.username)];
    for (const s of [userinfo, ...parts]) {
      if (s && !secrets.includes(s)) secrets.push(s);
    }
  }
  return { url: location, display: redactUrl(location), secrets };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Rules of `git check-ref-format`, plus no leading '-' (never read as an option). */
function checkBranch(branch: string): void {
  const bad =
    branch.startsWith('-') ||
    branch.startsWith('/') ||
    branch.endsWith('/') ||
    branch.endsWith('.') ||
    branch.endsWith('.lock') ||
    branch.includes('..') ||
    branch.includes('//') ||
    branch.includes('@{') ||
    branch === '@' ||
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what git refuses
    /[\x00-\x20\x7f~^:?*[\\]/.test(branch) ||
    branch.split('/').some((part) => part.startsWith('.'));
  if (bad) throw new GitSourceError(`${JSON.stringify(branch)} is not a valid branch name (write git+URL#BRANCH:PATH, e.g. #main:mesh)`);
}

function checkPath(subdir: string): string {
  if (subdir.startsWith('/')) throw new GitSourceError(`the path after ':' is inside the repository and relative to its root, not ${JSON.stringify(subdir)} (e.g. #main:mesh)`);
  const parts = subdir.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new GitSourceError(`the path ${JSON.stringify(subdir)} leaves the repository ('..'); name a directory inside it`);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a path with control characters is a typo, not a directory
  if (parts.some((p) => /[\x00-\x1f\\]/.test(p))) throw new GitSourceError(`the path ${JSON.stringify(subdir)} holds characters a repository path cannot`);
  return parts.join('/');
}

/** The URL with its userinfo replaced: `https://***@host/repo.git`. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)[^/?#]*@/, '$1***@');
}

/** Any text (git's own messages) with the secrets and every URL's userinfo replaced. */
export function redactText(text: string, secrets: readonly string[]): string {
  let out = text;
  // Longest first, so a password inside the userinfo does not leave the rest behind.
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join('***');
  return out.replace(/([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)[^/\s'"@]*@/g, '$1***@');
}

/** How the source is named in messages: `URL#branch:path`, credentials replaced. */
export function describeGitSource(spec: GitSourceSpec): string {
  return `${spec.display}#${spec.branch}${spec.path ? `:${spec.path}` : ''}`;
}
