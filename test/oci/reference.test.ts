import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHearthError } from '@hearth/core';
import { formatReference, parseReference } from '@hearth/oci';

const digest = `sha256:${'ab'.repeat(32)}`;

test('parseReference splits registry, repository, tag and digest', () => {
  assert.deepEqual(parseReference('127.0.0.1:5000/hearth/node:latest'), { registry: '127.0.0.1:5000', repository: 'hearth/node', tag: 'latest' });
  assert.deepEqual(parseReference(`127.0.0.1:5000/fn/hello:v1@${digest}`), { registry: '127.0.0.1:5000', repository: 'fn/hello', tag: 'v1', digest });
  assert.deepEqual(parseReference(`localhost/x@${digest}`), { registry: 'localhost', repository: 'x', digest });
  // No registry part: the default one; no tag: latest.
  assert.deepEqual(parseReference('hearth/node', '127.0.0.1:5000'), { registry: '127.0.0.1:5000', repository: 'hearth/node', tag: 'latest' });
  assert.deepEqual(parseReference('busybox'), { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' });
  for (const ref of ['127.0.0.1:5000/hearth/node:latest', `127.0.0.1:5000/fn/hello:v1@${digest}`]) {
    assert.equal(formatReference(parseReference(ref)), ref);
  }
});

test('parseReference refuses malformed references with INVALID_ARGUMENT naming them', () => {
  for (const bad of ['', 'Upper/case', 'a/b:bad tag', 'a/b@sha256:123', 'a//b', `a/b@${digest}@${digest}`]) {
    assert.throws(() => parseReference(bad), (err) => isHearthError(err, 'INVALID_ARGUMENT') && err.message.includes(JSON.stringify(bad)), bad);
  }
});
