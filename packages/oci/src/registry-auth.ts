import { request } from 'undici';
import { HearthError } from '@hearth/core';

/** A parsed `WWW-Authenticate` challenge: the scheme (lowercase) and its parameters. */
export interface AuthChallenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (or `Basic realm="…"`). Only the first challenge is read. */
export function parseWwwAuthenticate(header: string | undefined): AuthChallenge | undefined {
  if (!header) return undefined;
  const m = /^\s*([A-Za-z][\w-]*)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  // Values are quoted strings (scopes hold commas) or bare tokens.
  const re = /([A-Za-z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (const p of (m[2] ?? '').matchAll(re)) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme: m[1]!.toLowerCase(), params };
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/**
 * What a RegistryClient knows about authenticating to one registry: the last challenge
 * it saw and the bearer tokens it holds, one per scope set. Credentials are sent only after
 * the registry asked for them (Basic), or only to the token realm it named (Bearer).
 */
export class RegistryAuth {
  readonly #registry: string;
  readonly #username: string | undefined;
  readonly #password: string | undefined;
  readonly #userAgent: string;
  #challenge: AuthChallenge | undefined;
  readonly #tokens = new Map<string, CachedToken>();

  constructor(opts: { registry: string; username?: string | undefined; password?: string | undefined; userAgent: string }) {
    this.#registry = opts.registry;
    this.#username = opts.username;
    this.#password = opts.password;
    this.#userAgent = opts.userAgent;
  }

  /** The Authorization header for a request that needs `scopes`, if we have one. */
  headerFor(scopes: string[]): string | undefined {
    const scheme = this.#challenge?.scheme;
    if (scheme === 'basic') return this.#basic();
    if (scheme === 'bearer') {
      const cached = this.#tokens.get(scopeKey(scopes));
      if (cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    }
    return undefined;
  }

  /**
   * Reacts to a 401: learns the challenge and gets what the next attempt needs (a token
   * for `scopes`, or permission to send basic credentials). Throws UNAUTHENTICATED when
   * there is nothing to try.
   */
  async handleChallenge(header: string | undefined, scopes: string[]): Promise<void> {
    const challenge = parseWwwAuthenticate(header);
    if (!challenge) {
      throw new HearthError('UNAUTHENTICATED', `registry ${this.#registry} answered 401 without a WWW-Authenticate challenge`);
    }
    this.#challenge = challenge;
    if (challenge.scheme === 'basic') {
      if (!this.#basic()) {
        throw new HearthError('UNAUTHENTICATED', `registry ${this.#registry} requires a username and password (set HEARTH_REGISTRY_USERNAME and HEARTH_REGISTRY_PASSWORD)`);
      }
      return;
    }
    if (challenge.scheme !== 'bearer') {
      throw new HearthError('UNAUTHENTICATED', `registry ${this.#registry} asks for unsupported auth scheme ${challenge.scheme}`);
    }
    const wanted = [...scopes];
    const offered = challenge.params.scope;
    if (offered) for (const s of offered.split(' ')) if (s && !wanted.includes(s)) wanted.push(s);
    this.#tokens.set(scopeKey(scopes), await this.#fetchToken(challenge, wanted));
  }

  #basic(): string | undefined {
    if (this.#username === undefined || this.#password === undefined) return undefined;
    return `Basic ${Buffer.from(`${this.#username}:${this.#password}`).toString('base64')}`;
  }

  async #fetchToken(challenge: AuthChallenge, scopes: string[]): Promise<CachedToken> {
    const realm = challenge.params.realm;
    if (!realm) throw new HearthError('UNAUTHENTICATED', `registry ${this.#registry} sent a Bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new HearthError('UNAUTHENTICATED', `registry ${this.#registry} sent an invalid token realm ${JSON.stringify(realm)}`);
    }
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    for (const s of scopes) url.searchParams.append('scope', s);
    if (this.#username) url.searchParams.set('account', this.#username);
    const headers: Record<string, string> = { 'user-agent': this.#userAgent, accept: 'application/json' };
    const basic = this.#basic();
    if (basic) headers.authorization = basic;

    let res;
    try {
      res = await request(url, { method: 'GET', headers, maxRedirections: 3 });
    } catch (err) {
      throw new HearthError('UNAVAILABLE', `token service ${url.host} of registry ${this.#registry} is unreachable: ${(err as Error).message}`, { cause: err });
    }
    if (res.statusCode === 401 || res.statusCode === 403) {
      await res.body.dump();
      throw new HearthError(
        'UNAUTHENTICATED',
        basic
          ? `registry ${this.#registry}: token service ${url.host} rejected the username or password for user ${JSON.stringify(this.#username)}`
          : `registry ${this.#registry}: token service ${url.host} requires a username and password`,
      );
    }
    if (res.statusCode !== 200) {
      const text = (await res.body.text()).slice(0, 200);
      throw new HearthError('BAD_GATEWAY', `registry ${this.#registry}: token service ${url.host} answered ${res.statusCode}: ${text}`);
    }
    let body: { token?: string; access_token?: string; expires_in?: number };
    try {
      body = (await res.body.json()) as typeof body;
    } catch {
      throw new HearthError('BAD_GATEWAY', `registry ${this.#registry}: token service ${url.host} did not answer JSON`);
    }
    const token = body.token ?? body.access_token;
    if (!token) throw new HearthError('BAD_GATEWAY', `registry ${this.#registry}: token service ${url.host} answered without a token`);
    // The spec's default lifetime is 60 s; renew a little early.
    const ttlSec = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60;
    return { token, expiresAt: Date.now() + Math.max(1, ttlSec - 10) * 1000 };
  }
}

function scopeKey(scopes: string[]): string {
  return [...scopes].sort().join(' ');
}
