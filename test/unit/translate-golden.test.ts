// Golden tests for the translator (Kuma style): test/golden/NN-topic/input.yaml in,
// golden.json out. `UPDATE_GOLDEN=1 npx ava test/unit/translate-golden.test.ts`
// rewrites the golden files; read the diff before committing it.
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { translate } from '../../control-plane/translate/index.ts';
import { goldenCases } from '../golden/cases.ts';

const update = process.env.UPDATE_GOLDEN === '1';

for (const c of goldenCases()) {
  test(`${c.name}: the translator output matches golden.json`, (t) => {
    const actual = JSON.parse(JSON.stringify(translate(c.input)));
    const file = path.join(c.dir, 'golden.json');
    if (update) {
      fs.writeFileSync(file, `${JSON.stringify(actual, null, 2)}\n`);
      t.log(`updated ${path.relative(process.cwd(), file)}`);
    }
    t.true(fs.existsSync(file), `${file} is missing: run with UPDATE_GOLDEN=1`);
    t.deepEqual(actual, JSON.parse(fs.readFileSync(file, 'utf8')));
  });
}

test('translating the same input twice gives byte-identical output', (t) => {
  for (const c of goldenCases()) t.is(JSON.stringify(translate(c.input)), JSON.stringify(translate(c.input)), c.name);
});
