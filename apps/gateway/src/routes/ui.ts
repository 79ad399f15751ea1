import { readFileSync } from 'node:fs';
import { Hono } from 'hono';

// Read once at start: the page is static; its data comes from /system/traces, under the API key.
const asset = (name: string) => readFileSync(new URL(`../ui/${name}`, import.meta.url), 'utf8');
const PAGES = { traces: asset('traces.html') };
const ASSETS: Record<string, { body: string; type: string }> = {
  'traces.js': { body: asset('traces.js'), type: 'text/javascript; charset=utf-8' },
  'traces.css': { body: asset('traces.css'), type: 'text/css; charset=utf-8' },
  'favicon.svg': { body: asset('favicon.svg'), type: 'image/svg+xml' },
};

/** Scripts and styles only from the gateway itself; data only from its own API; never framed. */
const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/**
 * `/ui`: the dashboard. The pages are public static files and hold no data: their scripts
 * call `/system/*` with the API key the user pastes into the page (kept in the browser's
 * localStorage), so the page needs no auth of its own and never carries a key.
 */
export function uiRoutes(): Hono {
  const app = new Hono();
  app.get('/', (c) => c.redirect('/ui/traces'));
  app.get('/traces', (c) => c.html(PAGES.traces, 200, { ...SECURITY_HEADERS, 'Cache-Control': 'no-cache' }));
  app.get('/assets/:name', (c) => {
    const file = ASSETS[c.req.param('name')];
    if (!file) return c.notFound();
    return c.body(file.body, 200, { ...SECURITY_HEADERS, 'Content-Type': file.type, 'Cache-Control': 'no-cache' });
  });
  return app;
}
