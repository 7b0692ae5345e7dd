// `tessera analyze DIR` (or `--admin URL` for the running config): the errors of
// `validate`, then warnings about what probably does not do what was meant. Exits 1
// on errors, 0 otherwise (warnings are advice); `--strict` makes warnings fail too.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { analyze, type Finding } from '../config/analyze.ts';
import { loadConfigDir } from '../config/load.ts';
import { adminGet } from './admin-client.ts';

export async function analyzeCommand(args: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { admin: { type: 'string' }, strict: { type: 'boolean' } } });
  let findings: Finding[];
  if (values.admin) {
    ({ findings } = await adminGet<{ findings: Finding[] }>({ adminUrl: values.admin, token: process.env.TESSERA_TOKEN }, '/api/v1/analyze'));
  } else {
    const dir = positionals[0];
    if (!dir) {
      err.write('usage: tessera analyze DIR | tessera analyze --admin URL\n');
      return 2;
    }
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
      err.write(`tessera analyze: ${dir} is not a directory\n`);
      return 2;
    }
    const { model, errors } = await loadConfigDir(dir);
    if (errors.length > 0) {
      for (const e of errors) err.write(`${e.file}:${e.line}${e.column ? `:${e.column}` : ''}: error: ${e.message}\n`);
      err.write(`${errors.length} error${errors.length === 1 ? '' : 's'} in ${dir}\n`);
      return 1;
    }
    findings = analyze({ model });
  }
  for (const f of findings) out.write(`${f.file}:${f.line}: warning [${f.code}]: ${f.message}\n`);
  out.write(findings.length === 0 ? 'ok: no warnings\n' : `${findings.length} warning${findings.length === 1 ? '' : 's'}\n`);
  return values.strict && findings.length > 0 ? 1 : 0;
}
