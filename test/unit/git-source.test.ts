// The git config source: what `git+URL#BRANCH:PATH` means, how credentials are kept
// out of every message, and the source itself against real local repositories
// (real git, no network): new revisions applied, broken ones reported with file:line
// and SHA, fetch failures reported, suspend and sync.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { loadConfigDir } from '../../control-plane/config/load.ts';
import { type GitLoadResult, watchGitSource } from '../../control-plane/config/git-source.ts';
import { GitSourceError, parseGitSource, redactText, redactUrl } from '../../control-plane/config/git-url.ts';
import { tempDir } from '../support/mesh.ts';
import { waitFor } from '../support/processes.ts';

test('git+https://host/repo.git#branch:sub/dir names the repository, the branch and the dir inside it', (t) => {
  const s = parseGitSource('git+https://git.example.com/org/repo.git#release/v2:deploy/mesh');
  t.is(s.url, 'https://git.example.com/org/repo.git');
  t.is(s.branch, 'release/v2');
  t.is(s.path, 'deploy/mesh');
  t.deepEqual(s.secrets, []);
});

test('the branch defaults to main and the path to the repository root', (t) => {
  t.like(parseGitSource('git+https://h/r.git'), { branch: 'main', path: '' });
  t.like(parseGitSource('git+https://h/r.git#dev'), { branch: 'dev', path: '' });
  t.like(parseGitSource('git+https://h/r.git#:mesh/'), { branch: 'main', path: 'mesh' });
  t.like(parseGitSource('git+http://127.0.0.1:8080/repo.git#main:./a//b'), { url: 'http://127.0.0.1:8080/repo.git', path: 'a/b' });
});

test('a local path is made absolute, a file:// URL is kept as written', (t) => {
  t.like(parseGitSource('git+../repos/mesh#main:cfg', '/srv/tessera'), { url: '/srv/repos/mesh', branch: 'main', path: 'cfg' });
  t.like(parseGitSource('git+/srv/repo.git'), { url: '/srv/repo.git' });
  t.like(parseGitSource('git+file:///srv/repo.git#main:mesh'), { url: 'file:///srv/repo.git', path: 'mesh' });
});

test('a source Tessera cannot fetch is refused with a message that names the fix', (t) => {
  const refused: [string, RegExp][] = [
    ['https://h/r.git', /starts with git\+/],
    ['git+', /names no repository/],
    ['git+ssh://git@github.com/o/r.git', /ssh:\/\/ is not supported; use https:\/\/, http:\/\/, file:\/\/ or a local path/],
    ['git+git@github.com:o/r.git', /is an ssh address/],
    ['git+ext::sh -c touch% /tmp/pwned', /transport::address form .* is not supported/],
    ['git+-uhack', /may not start with '-'/],
    ['git+file://otherhost/srv/r.git', /names a path on this machine/],
    ['git+https://h/r.git#-x', /not a valid branch name .*#main:mesh/],
    ['git+https://h/r.git#a..b', /not a valid branch name/],
    ['git+https://h/r.git#with space', /not a valid branch name/],
    ['git+https://h/r.git#main:/etc', /relative to its root/],
    ['git+https://h/r.git#main:mesh/../../etc', /leaves the repository/],
  ];
  for (const [spec, message] of refused) {
    const err = t.throws(() => parseGitSource(spec), { instanceOf: GitSourceError }, spec);
    t.regex(err!.message, message, spec);
    t.is((err as GitSourceError).code, 'TESSERA_ERR_GIT_SOURCE');
  }
});

test('credentials in the URL are never shown: not in the display URL, not in git messages', (t) => {
  const s = parseGitSource('git+https://deploy:s3cr%40t@git.example.com/org/repo.git#main:mesh');
  t.is(s.url, 'https://deploy:s3cr%40t@git.example.com/org/repo.git', 'git itself gets them');
  t.is(s.display, 'https://***@git.example.com/org/repo.git');
  const gitSays = "fatal: unable to access 'https://deploy:s3cr%40t@git.example.com/org/repo.git/': The requested URL returned error: 403 (s3cr@t)";
  const shown = redactText(gitSays, s.secrets);
  t.false(shown.includes('s3cr'), shown);
  t.regex(shown, /https:\/\/\*\*\*@git\.example\.com\/org\/repo\.git/);

  // A token as the username (GitHub's https://TOKEN@github.com) is a secret too.
  const token = parseGitSource('git+https://ghp_0123456789abcdef@github.com/o/r.git');
  t.is(token.display, 'https://***@github.com/o/r.git');
  t.false(redactText('remote: invalid token ghp_0123456789abcdef', token.secrets).includes('ghp_'));
  // Any URL with userinfo in a message, even one git was redirected to.
  t.is(redactText('see http://a:b@other.example/x', []), 'see http://***@other.example/x');
  t.is(redactUrl('https://u:p@ss@h/r.git'), 'https://***@h/r.git');
});

// ---- the source against real local repositories ----

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=Tessera Test', '-c', 'user.email=test@tessera.invalid', '-c', 'init.defaultBranch=main', ...args], { cwd, encoding: 'utf8' }).trim();

function repo(t: ExecutionContext): { dir: string; commit: (files: Record<string, string | null>, message: string) => string } {
  const dir = tempDir(t, 'tessera-gitrepo-');
  git(dir, 'init', '-q');
  return {
    dir,
    commit(files, message) {
      for (const [name, text] of Object.entries(files)) {
        const file = path.join(dir, name);
        if (text === null) fs.rmSync(file);
        else {
          fs.mkdirSync(path.dirname(file), { recursive: true });
          fs.writeFileSync(file, text);
        }
      }
      git(dir, 'add', '-A');
      git(dir, 'commit', '-q', '--allow-empty', '-m', message);
      return git(dir, 'rev-parse', 'HEAD');
    },
  };
}

const service = (name: string) => `apiVersion: v1
kind: Service
metadata: {name: ${name}}
spec:
  ports: [{name: http, port: 80, appProtocol: http}]
`;

function watch(t: ExecutionContext, spec: string, opts: { intervalMs?: number; accept?: boolean; timeoutMs?: number; cacheDir?: string } = {}) {
  const results: GitLoadResult[] = [];
  const lines: string[] = [];
  const source = watchGitSource(
    parseGitSource(spec),
    (r) => {
      results.push(r);
      return (opts.accept ?? true) && r.errors.length === 0;
    },
    { intervalMs: opts.intervalMs ?? 200, timeoutMs: opts.timeoutMs, cacheDir: opts.cacheDir, load: async (dir, limits) => loadConfigDir(dir, limits), log: (l) => lines.push(l), repeatLogMs: 60_000 },
  );
  t.teardown(() => source.close());
  return { source, results, lines };
}

test('each new revision of PATH is loaded once and applied; a broken one names file:line and its SHA; a fix applies again', async (t) => {
  const r = repo(t);
  const first = r.commit({ 'mesh/a.yaml': service('a'), 'README.md': 'not config' }, 'first');
  const { source, results } = watch(t, `git+${r.dir}#main:mesh`);
  await waitFor('the first revision', () => source.status().appliedRevision === first, 10_000);
  t.deepEqual(results[0].files, ['mesh/a.yaml'], 'only PATH is read, named by its path in the repository');
  t.deepEqual(results[0].model.services.map((s) => s.name), ['a']);

  const broken = r.commit({ 'mesh/b.yaml': service('b').replace('ports:', 'portz:') }, 'broken');
  await waitFor('the broken revision', () => source.status().fetchedRevision === broken && source.status().lastError, 10_000);
  const status = source.status();
  t.is(status.appliedRevision, first, 'the last good revision keeps serving');
  t.is(status.lastError?.kind, 'config');
  t.is(status.lastError?.revision, broken);
  const rejected = results.at(-1)!;
  t.is(rejected.revision, broken);
  const typo = rejected.errors.find((e) => /unknown field 'spec.portz'/.test(e.message));
  t.like(typo, { file: 'mesh/b.yaml', line: 5, revision: broken }, JSON.stringify(rejected.errors));
  const handed = results.length;
  await new Promise((res) => setTimeout(res, 700));
  t.is(results.length, handed, 'a revision already seen is not loaded again at every poll');

  const fixed = r.commit({ 'mesh/b.yaml': service('b'), 'mesh/a.yaml': null }, 'fixed');
  await waitFor('the fix', () => source.status().appliedRevision === fixed, 10_000);
  t.deepEqual(results.at(-1)!.model.services.map((s) => s.name), ['b'], 'a file deleted in the commit is gone');
  t.is(source.status().lastError, undefined);
});

test('a PATH the revision does not have, and a branch the repository does not have, are reported', async (t) => {
  const r = repo(t);
  const sha = r.commit({ 'other/a.yaml': service('a') }, 'first');
  const noPath = watch(t, `git+${r.dir}#main:mesh`);
  await waitFor('the missing path', () => noPath.results.length > 0, 10_000);
  t.like(noPath.results[0].errors[0], { file: 'mesh', line: 0, revision: sha });
  t.regex(noPath.results[0].errors[0].message, new RegExp(`mesh does not exist in revision ${sha} of branch main`));

  const noBranch = watch(t, `git+${r.dir}#nope`);
  await waitFor('the missing branch', () => noBranch.source.status().lastError, 10_000);
  t.like(noBranch.source.status().lastError, { kind: 'fetch', message: `branch nope does not exist in ${r.dir}` });
  t.is(noBranch.results.length, 0);
  t.is(noBranch.lines.length, 1, 'logged once');
  await waitFor('retries', () => noBranch.source.status().consecutiveFailures >= 3, 10_000);
  t.is(noBranch.lines.length, 1, 'the same failure is not logged at every retry');
});

test('an unreachable repository with credentials in its URL is reported without them, and retried until it answers', async (t) => {
  const r = repo(t);
  const sha = r.commit({ 'a.yaml': service('a') }, 'first');
  // Nothing listens on port 9 (discard) on loopback: the connection is refused at once.
  const { source, lines } = watch(t, 'git+http://deploy:hunter2@127.0.0.1:9/repo.git');
  await waitFor('the failure', () => source.status().lastError, 15_000);
  const shown = JSON.stringify(source.status()) + lines.join('\n');
  t.false(shown.includes('hunter2'), shown);
  t.false(shown.includes('deploy'), shown);
  t.regex(source.status().lastError!.message, /http:\/\/\*\*\*@127\.0\.0\.1:9\/repo\.git/);
  t.is(source.status().appliedRevision, undefined);

  // A source that fails and later answers applies its revision (a local path that appears).
  const later = path.join(tempDir(t), 'later');
  const w = watch(t, `git+${later}`);
  await waitFor('the failure', () => w.source.status().lastError, 10_000);
  fs.cpSync(r.dir, later, { recursive: true });
  await waitFor('the revision once the repository exists', () => w.source.status().appliedRevision === sha, 10_000);
  t.true(w.lines.some((l) => /works again after \d+ failed attempts?/.test(l)), w.lines.join('\n'));
});

test('suspended, no new revision is applied and sync is refused; resumed, the newest applies; sync fetches at once', async (t) => {
  const r = repo(t);
  const first = r.commit({ 'a.yaml': service('a') }, 'first');
  const { source } = watch(t, `git+file://${r.dir}#main`, { intervalMs: 60_000 });
  await waitFor('the first revision', () => source.status().appliedRevision === first, 10_000);

  // A 60 s interval: only sync fetches within the test.
  const second = r.commit({ 'b.yaml': service('b') }, 'second');
  const synced = await source.sync();
  t.is(synced.fetchedRevision, second);
  t.is(synced.appliedRevision, second);

  t.true(source.suspend().suspended);
  const third = r.commit({ 'c.yaml': service('c') }, 'third');
  await t.throwsAsync(() => source.sync(), { message: /suspended: resume it first/ });
  t.is(source.status().appliedRevision, second);
  t.false(source.resume().suspended);
  await waitFor('the newest revision after resume', () => source.status().appliedRevision === third, 10_000);
});

test('a revision the control plane refuses to serve is not marked applied', async (t) => {
  const r = repo(t);
  r.commit({ 'a.yaml': service('a') }, 'first');
  const { source, results } = watch(t, `git+${r.dir}`, { accept: false });
  await waitFor('the revision to be handed over', () => results.length > 0 && source.status().lastError, 10_000);
  t.is(source.status().appliedRevision, undefined);
  t.regex(source.status().lastError!.message, /was not applied/);
});

test('a symlink in the repository is read as the link text, never as the file it points to', async (t) => {
  const r = repo(t);
  fs.mkdirSync(path.join(r.dir, 'mesh'));
  fs.symlinkSync('/etc/passwd', path.join(r.dir, 'mesh', 'leak.yaml'));
  const sha = r.commit({ 'mesh/a.yaml': service('a') }, 'a link out of the repository');
  const { results } = watch(t, `git+${r.dir}#main:mesh`);
  await waitFor('the revision', () => results.length > 0, 10_000);
  t.is(results[0].revision, sha);
  const leak = results[0].errors.find((e) => e.file === 'mesh/leak.yaml');
  t.truthy(leak, JSON.stringify(results[0].errors));
  t.regex(leak!.message, /must be a mapping/, 'the text "/etc/passwd" is no config document');
  t.false(JSON.stringify(results[0]).includes('root:'), 'nothing of /etc/passwd was read');
});

test('a repository that accepts the connection and never answers is given up at the deadline and tried again', async (t) => {
  const sockets: net.Socket[] = [];
  const silent = net.createServer((s) => sockets.push(s));
  await new Promise<void>((res) => silent.listen(0, '127.0.0.1', res));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const port = (silent.address() as net.AddressInfo).port;
  const started = Date.now();
  const { source } = watch(t, `git+http://127.0.0.1:${port}/repo.git`, { timeoutMs: 700, intervalMs: 300 });
  await waitFor('the deadline', () => source.status().lastError, 10_000);
  t.true(Date.now() - started < 5000);
  t.regex(source.status().lastError!.message, /took over 0\.7 s and was stopped/);
  await waitFor('a second attempt', () => source.status().consecutiveFailures >= 2, 10_000);
});

test('a cache dir removed from under a running source (a temp cleaner) is made again', async (t) => {
  const r = repo(t);
  const first = r.commit({ 'a.yaml': service('a') }, 'first');
  const cacheDir = tempDir(t, 'tessera-gitcache-');
  const { source } = watch(t, `git+${r.dir}`, { cacheDir });
  await waitFor('the first revision', () => source.status().appliedRevision === first, 10_000);
  fs.rmSync(cacheDir, { recursive: true, force: true });
  const second = r.commit({ 'b.yaml': service('b') }, 'second');
  await waitFor('the next revision', () => source.status().appliedRevision === second, 10_000);
  t.true(fs.existsSync(path.join(cacheDir, 'repo.git', 'HEAD')));
});
