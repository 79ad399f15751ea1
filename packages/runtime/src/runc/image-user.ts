import fs from 'node:fs/promises';
import path from 'node:path';
import { HearthError } from '@hearth/core';

/**
 * Resolves an OCI `User` ("", "uid", "uid:gid", "name", "name:group") to numbers. Names are
 * looked up in the image's /etc/passwd and /etc/group, top layer first.
 */
export async function resolveImageUser(user: string | undefined, layers: string[]): Promise<{ uid: number; gid: number }> {
  if (!user) return { uid: 0, gid: 0 };
  const [u = '', g] = user.split(':');
  const uidEntry = /^\d+$/.test(u) ? undefined : await lookup(layers, 'etc/passwd', u);
  if (uidEntry === null) throw new HearthError('INVALID_ARGUMENT', `image user "${u}" is not in the image's /etc/passwd`);
  const uid = uidEntry ? Number(uidEntry[2]) : Number(u);
  let gid = uidEntry ? Number(uidEntry[3]) : 0;
  if (g !== undefined && g !== '') {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const groupEntry = await lookup(layers, 'etc/group', g);
      if (!groupEntry) throw new HearthError('INVALID_ARGUMENT', `image group "${g}" is not in the image's /etc/group`);
      gid = Number(groupEntry[2]);
    }
  }
  return { uid, gid };
}

/** The colon-separated fields of `name`'s line, or null when no layer has it. */
async function lookup(layers: string[], file: string, name: string): Promise<string[] | null> {
  for (const layer of [...layers].reverse()) {
    const text = await fs.readFile(path.join(layer, file), 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    for (const line of text.split('\n')) {
      const fields = line.split(':');
      if (fields[0] === name && fields.length >= 3) return fields;
    }
    return null; // the top-most file that exists is the one the container sees
  }
  return null;
}
