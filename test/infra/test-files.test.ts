import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findTestFiles } from '../../infra/test-files.ts';
import { uniquePrefix } from '../helpers/services.ts';

const root = await fs.mkdtemp(path.join(os.tmpdir(), `${uniquePrefix('test-files')}-`));
after(() => fs.rm(root, { recursive: true, force: true }));

const files = [
  'test/a.test.ts',
  'test/e2e/deep/b.test.ts',
  'test/helpers/services.ts',
  'test/fixtures/functions/x/index.test.js',
  'packages/oci/src/c.test.ts',
  'packages/oci/node_modules/dep/d.test.ts',
  'packages/oci/test/e.test.ts',
  'apps/worker/src/pool/f.test.ts',
  'apps/cli/test/g.test.ts',
  'apps/cli/bin/h.test.ts',
  'bench/i.test.ts',
];
for (const file of files) {
  await fs.mkdir(path.join(root, path.dirname(file)), { recursive: true });
  await fs.writeFile(path.join(root, file), '');
}

test('npm test finds every *.test.ts under test/, packages/*/{src,test} and apps/*/{src,test}, sorted', () => {
  assert.deepEqual(findTestFiles(root), [
    'apps/cli/test/g.test.ts',
    'apps/worker/src/pool/f.test.ts',
    'packages/oci/src/c.test.ts',
    'packages/oci/test/e.test.ts',
    'test/a.test.ts',
    'test/e2e/deep/b.test.ts',
  ]);
});

test('files and folders named on the command line select the tests instead', () => {
  assert.deepEqual(findTestFiles(root, [path.join(root, 'test/e2e'), path.join(root, 'packages/oci/src/c.test.ts')]), [
    'packages/oci/src/c.test.ts',
    'test/e2e/deep/b.test.ts',
  ]);
  assert.throws(() => findTestFiles(root, [path.join(root, 'test/nope')]), /no such test file or folder: .*test\/nope/);
});
