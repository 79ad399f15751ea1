import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { create as tarCreate } from 'tar';
import { isHearthError } from '@hearth/core';
import { MEDIA_TYPES, openContentStore, sha256Digest, unpackLayer } from '@hearth/oci';
import { makeTar, tempDir, type TarEntrySpec } from './helpers.ts';

const run = promisify(execFile);
const work = await tempDir('unpack');
after(() => rm(work, { recursive: true, force: true }));
const store = openContentStore(path.join(work, 'content'));

async function storeLayer(bytes: Buffer): Promise<string> {
  const digest = sha256Digest(bytes);
  await store.write(digest, bytes);
  return digest;
}

async function unpackInto(name: string, bytes: Buffer, mediaType: string = MEDIA_TYPES.ociLayerGzip): Promise<string> {
  const dest = path.join(work, 'layers', name);
  await mkdir(dest, { recursive: true });
  await unpackLayer({ store, digest: await storeLayer(bytes), mediaType, dest });
  return dest;
}

/** Packs a real folder with node-tar (what `docker save` layers look like: "./"-less relative paths). */
async function tarOfFolder(dir: string, gzip: boolean): Promise<Buffer> {
  const file = `${dir}.tar${gzip ? '.gz' : ''}`;
  await tarCreate({ cwd: dir, file, gzip, portable: true }, await readdir(dir));
  return readFile(file);
}

test('OCI whiteouts become overlay whiteouts, and overlayfs honours them', async () => {
  // Lower layer: a file that will be deleted, a folder that will be made opaque, one that stays.
  const lowerSrc = path.join(work, 'src-lower');
  await mkdir(path.join(lowerSrc, 'opaque'), { recursive: true });
  await mkdir(path.join(lowerSrc, 'kept'), { recursive: true });
  await writeFile(path.join(lowerSrc, 'gone.txt'), 'deleted in the upper layer\n');
  await writeFile(path.join(lowerSrc, 'opaque', 'old-1'), 'hidden by the opaque marker\n');
  await writeFile(path.join(lowerSrc, 'opaque', 'old-2'), 'hidden by the opaque marker\n');
  await writeFile(path.join(lowerSrc, 'kept', 'a'), 'still here\n');
  // Upper layer: whiteout files as a layer diff carries them.
  const upperSrc = path.join(work, 'src-upper');
  await mkdir(path.join(upperSrc, 'opaque'), { recursive: true });
  await mkdir(path.join(upperSrc, 'kept'), { recursive: true });
  await writeFile(path.join(upperSrc, '.wh.gone.txt'), '');
  await writeFile(path.join(upperSrc, 'opaque', '.wh..wh..opq'), '');
  await writeFile(path.join(upperSrc, 'opaque', 'new'), 'from the upper layer\n');
  await writeFile(path.join(upperSrc, 'kept', 'b'), 'added\n');

  const lower = await unpackInto('lower', await tarOfFolder(lowerSrc, true));
  // The upper one uncompressed, to cover plain tar layers too.
  const upper = await unpackInto('upper', await tarOfFolder(upperSrc, false), MEDIA_TYPES.ociLayer);

  const wh = await lstat(path.join(upper, 'gone.txt'));
  assert.ok(wh.isCharacterDevice());
  assert.equal(wh.rdev, 0);
  await assert.rejects(lstat(path.join(upper, '.wh.gone.txt')), { code: 'ENOENT' });
  await assert.rejects(lstat(path.join(upper, 'opaque', '.wh..wh..opq')), { code: 'ENOENT' });
  const { stdout } = await run('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', path.join(upper, 'opaque')]);
  assert.equal(stdout, 'y');

  const mnt = path.join(work, 'mnt');
  await mkdir(mnt);
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${upper}:${lower}`, mnt]);
  try {
    assert.deepEqual((await readdir(mnt)).sort(), ['kept', 'opaque']);
    assert.deepEqual(await readdir(path.join(mnt, 'opaque')), ['new']);
    assert.deepEqual((await readdir(path.join(mnt, 'kept'))).sort(), ['a', 'b']);
    assert.equal(await readFile(path.join(mnt, 'opaque', 'new'), 'utf8'), 'from the upper layer\n');
  } finally {
    await run('umount', [mnt]);
  }
});

test('a leading "/" or "./" is read as relative to the layer root', async () => {
  const dest = await unpackInto('abs', await makeTar([{ path: '/etc/x', body: 'abs\n' }, { path: './etc/y', body: 'dot\n' }], { gzip: true }));
  assert.equal(await readFile(path.join(dest, 'etc', 'x'), 'utf8'), 'abs\n');
  assert.equal(await readFile(path.join(dest, 'etc', 'y'), 'utf8'), 'dot\n');
});

test('zstd layers unpack too', async () => {
  const tar = await makeTar([{ path: 'z/', type: 'Directory' }, { path: 'z/file', body: 'zstd\n' }]);
  const raw = path.join(work, 'layer.tar');
  await writeFile(raw, tar);
  await run('zstd', ['-q', '-f', raw, '-o', `${raw}.zst`]);
  const dest = await unpackInto('zstd', await readFile(`${raw}.zst`), MEDIA_TYPES.ociLayerZstd);
  assert.equal(await readFile(path.join(dest, 'z', 'file'), 'utf8'), 'zstd\n');
});

/** Each evil layer must be refused with INVALID_ARGUMENT, and nothing may appear outside dest. */
async function assertRefused(name: string, entries: TarEntrySpec[], why: RegExp): Promise<void> {
  const box = path.join(work, 'box', name);
  const dest = path.join(box, 'a', 'b', 'dest');
  await mkdir(dest, { recursive: true });
  const digest = await storeLayer(await makeTar(entries, { gzip: true }));
  await assert.rejects(unpackLayer({ store, digest, mediaType: MEDIA_TYPES.ociLayerGzip, dest }), (err) => {
    assert.ok(isHearthError(err, 'INVALID_ARGUMENT'), String(err));
    assert.match(err.message, why);
    return true;
  });
  // Everything in the box besides the destination is untouched.
  assert.deepEqual(await readdir(box), ['a']);
  assert.deepEqual(await readdir(path.join(box, 'a')), ['b']);
  assert.deepEqual(await readdir(path.join(box, 'a', 'b')), ['dest']);
}

test('an entry with ".." is refused', async () => {
  await assertRefused('dotdot', [{ path: '../x', body: 'evil\n' }], /"\.\.\/x" has a "\.\." component/);
  await assertRefused('dotdot-deep', [{ path: 'ok/', type: 'Directory' }, { path: 'ok/../../../x', body: 'evil\n' }], /"\.\." component/);
});

test('an entry written through a symlinked folder is refused', async () => {
  const outside = path.join(work, 'box', 'outside-target');
  await mkdir(outside, { recursive: true });
  await assertRefused(
    'symlink-abs',
    [
      { path: 'link', type: 'SymbolicLink', linkpath: outside },
      { path: 'link/evil', body: 'evil\n' },
    ],
    /"link\/evil" would be written through the symlink "link"/,
  );
  assert.deepEqual(await readdir(outside), []);
  await assertRefused(
    'symlink-rel',
    [
      { path: 'link', type: 'SymbolicLink', linkpath: '../..' },
      { path: 'link/evil', body: 'evil\n' },
    ],
    /written through the symlink "link"/,
  );
  // A symlink replacing a folder that was already written, then a write into it.
  await assertRefused(
    'symlink-swap',
    [
      { path: 'd/', type: 'Directory' },
      { path: 'd/one', body: '1\n' },
      { path: 'd', type: 'SymbolicLink', linkpath: '../..' },
      { path: 'd/two', body: 'evil\n' },
    ],
    /written through the symlink "d"/,
  );
});

test('hardlinks to targets outside the layer are refused', async () => {
  await assertRefused('hardlink-dotdot', [{ path: 'passwd', type: 'Link', linkpath: '../../etc/passwd' }], /points outside the layer/);
  await assertRefused('hardlink-missing', [{ path: 'passwd', type: 'Link', linkpath: '/etc/passwd' }], /target is not in this layer/);
  await assertRefused(
    'hardlink-via-symlink',
    [
      { path: 'etc', type: 'SymbolicLink', linkpath: '/etc' },
      { path: 'passwd', type: 'Link', linkpath: 'etc/passwd' },
    ],
    /runs through a symlink/,
  );
});

test('symlinks pointing anywhere are created as symlinks; hardlinks inside the layer work', async () => {
  const dest = await unpackInto(
    'links',
    await makeTar(
      [
        { path: 'etc/', type: 'Directory' },
        { path: 'etc/real', body: 'data\n', mode: 0o640, uid: 7, gid: 8 },
        { path: 'etc/hard', type: 'Link', linkpath: 'etc/real' },
        { path: 'up', type: 'SymbolicLink', linkpath: '../../../../etc/passwd' },
        { path: 'abs', type: 'SymbolicLink', linkpath: '/etc/shadow' },
        { path: 'dev/', type: 'Directory' },
        { path: 'dev/null', type: 'CharacterDevice' },
      ],
      { gzip: true },
    ),
  );
  assert.equal(await readlink(path.join(dest, 'up')), '../../../../etc/passwd');
  assert.equal(await readlink(path.join(dest, 'abs')), '/etc/shadow');
  const real = await lstat(path.join(dest, 'etc', 'real'));
  assert.equal((await lstat(path.join(dest, 'etc', 'hard'))).ino, real.ino);
  assert.deepEqual([real.mode & 0o777, real.uid, real.gid], [0o640, 7, 8]);
  // Device files are skipped (the runtime provides /dev).
  assert.deepEqual(await readdir(path.join(dest, 'dev')), []);
});

test('a corrupt layer is INVALID_ARGUMENT', async () => {
  const good = await makeTar([{ path: 'f', body: 'x'.repeat(2000) }]);
  const bad = Buffer.from(good);
  bad.write('garbage!', 100); // inside the first header: checksum no longer matches
  const dest = path.join(work, 'layers', 'corrupt');
  await mkdir(dest, { recursive: true });
  await assert.rejects(unpackLayer({ store, digest: await storeLayer(bad), mediaType: MEDIA_TYPES.ociLayer, dest }), (err) => isHearthError(err, 'INVALID_ARGUMENT'));
});
