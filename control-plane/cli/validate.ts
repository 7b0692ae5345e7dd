// `tessera validate DIR`: every error as file:line:column, non-zero exit on any.
import fs from 'node:fs';
import { loadConfigDir } from '../config/load.ts';

export async function validateCommand(args: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const dir = args.find((a) => !a.startsWith('-'));
  if (!dir) {
    err.write('usage: tessera validate DIR\n');
    return 2;
  }
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    err.write(`tessera validate: ${dir} is not a directory\n`);
    return 2;
  }
  const { model, errors, files } = loadConfigDir(dir);
  if (errors.length > 0) {
    for (const e of errors) err.write(`${e.file}:${e.line}${e.column ? `:${e.column}` : ''}: ${e.message}\n`);
    err.write(`${errors.length} error${errors.length === 1 ? '' : 's'} in ${dir}\n`);
    return 1;
  }
  const n = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : word.endsWith('y') ? '' : 's'}`;
  out.write(
    `ok: ${n(model.services.length, 'service')}, ${n(model.routes.length, 'route')}, ${model.policies.length} ${model.policies.length === 1 ? 'policy' : 'policies'}, ` +
      `${n(model.endpoints.length, 'endpoint')} in ${n(files.length, 'file')}\n`,
  );
  return 0;
}
