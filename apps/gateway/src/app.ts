import { Hono } from 'hono';
import type { AppDeps } from './deps.ts';
import { onError, notFoundRoute } from './on-error.ts';
import { invokeRoutes } from './routes/invoke.ts';
import { functionRoutes } from './routes/functions.ts';
import { asyncRoutes } from './routes/async.ts';
import { callRoutes } from './routes/calls.ts';
import { queueRoutes } from './routes/queues.ts';
import { keyRoutes, whoamiRoute } from './routes/keys.ts';
import { secretRoutes } from './routes/secrets.ts';
import { traceRoutes } from './routes/traces.ts';
import { uiRoutes } from './routes/ui.ts';
import { triggerGuard } from './trigger-guard.ts';
import { guardPath } from './path-guard.ts';
import { poolRoutes } from './routes/pools.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { openAccess, type Access } from './access.ts';
import { requireKey, requireKeyForPrivateFunctions, requireKeyUnlessLoopback } from './auth/require-key.ts';

/**
 * The gateway's HTTP surface. Routes stay thin; the work happens in the modules they call.
 * `access` guards the management API; without one, createApp opens its own on
 * config.databaseUrl (main.ts should pass one built on its pool and await its adminKey).
 */
export function createApp(deps: AppDeps, access: Access = openAccess(deps.config)): Hono {
  const app = new Hono();
  app.use('*', guardPath);
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  // Guards first: Hono runs handlers in the order they were added.
  app.use('/metrics/*', requireKeyUnlessLoopback(access.keys, access.home));
  app.route('/metrics', metricsRoutes(deps));
  const keyed = requireKey(access.keys, access.home);
  // `/x/*` also matches `/x` itself.
  for (const path of ['/system/*', '/calls/*', '/queues/*']) app.use(path, keyed);
  const privateFunctions = requireKeyForPrivateFunctions(access.keys, access.home, deps.functions);
  app.use('/function/:name/*', privateFunctions);
  app.use('/async-function/:name/*', privateFunctions);

  app.route('/function', invokeRoutes(deps));
  app.route('/system/keys', keyRoutes(access.keys));
  app.route('/system/whoami', whoamiRoute());
  // Before the trigger guard: setting a secret changes no trigger.
  app.route('/system/functions', secretRoutes(access.secrets));
  app.route('/system', poolRoutes(deps));
  app.use('/system/functions/*', triggerGuard(deps));
  app.route('/system/functions', functionRoutes(deps));
  app.route('/async-function', asyncRoutes(deps));
  app.route('/calls', callRoutes(deps));
  app.route('/queues', queueRoutes(deps));
  app.route('/system/traces', traceRoutes(deps.traces));
  app.route('/ui', uiRoutes());
  app.notFound(notFoundRoute);
  app.onError(onError);
  return app;
}
