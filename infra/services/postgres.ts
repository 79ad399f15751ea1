import { execFile, execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { commandLine, isAlive, isLoopback, logTail, probePort, readPidFile, waitForExit } from './daemon.ts';
import { once, type LocalService, type ServiceOptions } from './service.ts';

export const DEFAULT_DATABASE_URL = 'postgres://hearth:hearth@127.0.0.1:5432/hearth';

/** A Unix socket path must fit in sun_path (108 bytes); past that Postgres gets TCP only. */
const MAX_SOCKET_DIR = 90;

/** SELECT 1 over a fresh connection: 'ok', or the server's error (code and message). */
export async function pingPostgres(url: string): Promise<'ok' | { code?: string; message: string }> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return 'ok';
  } catch (err) {
    const { code, message } = err as { code?: string; message: string };
    return code === undefined ? { message } : { code, message };
  } finally {
    await client.end().catch(() => {});
  }
}

/** Creates the URL's database when the server is up but the database is not there yet. */
async function createDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
  } finally {
    await client.end();
  }
}

/** The newest installed Postgres' bin folder (Debian keeps it off PATH), or '' to use PATH. */
function postgresBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root)
    ? fs.readdirSync(root).filter((v) => fs.existsSync(path.join(root, v, 'bin', 'pg_ctl'))).sort((a, b) => Number(b) - Number(a))
    : [];
  return versions[0] ? path.join(root, versions[0], 'bin') : '';
}

const asRoot = process.getuid?.() === 0;

/** Runs a Postgres tool as the postgres OS user when we are root (Postgres refuses to run as root). */
function pgTool(tool: string, args: string[], opts: { allowFail?: boolean } = {}): Promise<{ ok: boolean; output: string }> {
  const bin = postgresBinDir();
  const program = bin ? path.join(bin, tool) : tool;
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', program, ...args]] : [program, args];
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { encoding: 'utf8', cwd: '/' }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim() || (err ? err.message : '');
      if (err && !opts.allowFail) reject(new Error(`postgres: ${tool} failed: ${output}`));
      else resolve({ ok: !err, output });
    });
  });
}

/**
 * The postgres user must be able to walk down to its data dir. A repo under /root (mode 700)
 * blocks that, so grant that one user search permission (ACL u:postgres:x) where needed.
 */
function letPostgresReach(dir: string, log: (line: string) => void): void {
  if (!asRoot) return;
  const canSearch = (d: string) => spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-x', d]).status === 0;
  if (canSearch(dir)) return;
  const parts = path.resolve(dir).split(path.sep).filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const ancestor = path.sep + parts.slice(0, i).join(path.sep);
    if (canSearch(ancestor)) continue;
    log(`postgres: letting the postgres user pass through ${ancestor} (setfacl -m u:postgres:x)`);
    execFileSync('setfacl', ['-m', 'u:postgres:x', ancestor]);
  }
}

function chownToPostgres(target: string): void {
  if (asRoot) execFileSync('chown', ['postgres:postgres', target]);
}

/**
 * Reuses the Postgres at DATABASE_URL (default postgres://hearth:hearth@127.0.0.1:5432/hearth)
 * when it accepts that user; otherwise runs its own cluster in <home>/postgres, listening on
 * 127.0.0.1 at the URL's port, whose superuser is the URL's user and password.
 */
export async function ensurePostgres({ home, env, log }: ServiceOptions): Promise<LocalService> {
  const url = env.DATABASE_URL || DEFAULT_DATABASE_URL;
  const parsed = new URL(url);
  const host = parsed.hostname || '127.0.0.1';
  const port = Number(parsed.port || 5432);
  const user = decodeURIComponent(parsed.username || 'hearth');
  const password = decodeURIComponent(parsed.password || 'hearth');
  const reuse: LocalService = { name: 'postgres', started: false, env: { DATABASE_URL: url }, stop: async () => {} };

  let ping = await pingPostgres(url);
  if (ping !== 'ok' && ping.code === '3D000') {
    // Server and user are fine, only the database is missing.
    await createDatabase(url);
    ping = await pingPostgres(url);
  }
  if (ping === 'ok') {
    log(`postgres: reusing ${host}:${port}`);
    return reuse;
  }
  if ((await probePort(host, port)) === 'open') {
    throw new Error(
      `postgres: a server on ${host}:${port} does not accept ${user} (${ping.message}); ` +
        `stop it (e.g. systemctl stop postgresql) or set DATABASE_URL to a database Hearth may use`,
    );
  }
  if (!isLoopback(host)) throw new Error(`postgres: cannot reach ${host}:${port} (${ping.message}); is DATABASE_URL right?`);

  const root = path.join(home, 'postgres');
  const data = path.join(root, 'data');
  const run = path.join(root, 'run');
  const logFile = path.join(root, 'postgres.log');
  fs.mkdirSync(root, { recursive: true });
  fs.mkdirSync(run, { recursive: true });
  chownToPostgres(root);
  chownToPostgres(run);
  letPostgresReach(root, log);

  if (!fs.existsSync(path.join(data, 'PG_VERSION'))) {
    // No PG_VERSION means no cluster, or an initdb that died half way: start afresh.
    fs.rmSync(data, { recursive: true, force: true });
    const pwfile = path.join(root, 'initdb.pw');
    fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    chownToPostgres(pwfile);
    try {
      log(`postgres: creating a cluster in ${data}`);
      await pgTool('initdb', ['-D', data, `--username=${user}`, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C']);
    } finally {
      fs.rmSync(pwfile, { force: true });
    }
    fs.appendFileSync(path.join(data, 'postgresql.conf'), "\ninclude_if_exists = 'hearth.conf'\n");
  }

  // Written at every start, so the port follows DATABASE_URL.
  const settings = [
    "listen_addresses = '127.0.0.1'",
    `port = ${port}`,
    `unix_socket_directories = '${run.length <= MAX_SOCKET_DIR ? run.replaceAll("'", "''") : ''}'`,
    'fsync = on',
  ];
  fs.writeFileSync(path.join(data, 'hearth.conf'), `${settings.join('\n')}\n`);
  chownToPostgres(path.join(data, 'hearth.conf'));

  // A postmaster left by an earlier run that does not answer on this port (e.g. the port changed).
  const stale = readPidFile(path.join(data, 'postmaster.pid'));
  if (stale !== undefined && isAlive(stale) && commandLine(stale).includes('postgres')) {
    await pgTool('pg_ctl', ['-D', data, 'stop', '-m', 'fast', '-w', '-t', '30'], { allowFail: true });
  }

  if (!fs.existsSync(logFile)) {
    fs.writeFileSync(logFile, '');
    chownToPostgres(logFile);
  }
  const started = await pgTool('pg_ctl', ['-D', data, '-l', logFile, '-w', '-t', '60', '-s', 'start'], { allowFail: true });
  if (!started.ok) throw new Error(`postgres: pg_ctl start failed: ${started.output}\n${logFile} ends with:\n${logTail(logFile)}`);
  const pid = readPidFile(path.join(data, 'postmaster.pid'));

  const stop = once(async () => {
    await pgTool('pg_ctl', ['-D', data, 'stop', '-m', 'fast', '-w', '-t', '30', '-s'], { allowFail: true });
    if (pid !== undefined && !(await waitForExit(pid, 1000))) {
      process.kill(pid, 'SIGKILL');
      await waitForExit(pid, 5000);
    }
  });
  try {
    await createDatabase(url);
    const check = await pingPostgres(url);
    if (check !== 'ok') throw new Error(`postgres: started, but ${user} cannot connect: ${check.message}`);
  } catch (err) {
    await stop();
    throw err;
  }
  log(`postgres: started on ${host}:${port} (pid ${pid}, data in ${data})`);
  return { ...reuse, started: true, ...(pid === undefined ? {} : { pid }), stop };
}
