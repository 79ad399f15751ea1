import { Hono } from 'hono';
import type { AppDeps } from './deps.ts';
import { onError, notFoundRoute } from './on-error.ts';
import { invokeRoutes } from './routes/invoke.ts';
import { functionRoutes } from './routes/functions.ts';
import { asyncRoutes } from './routes/async.ts';
import { callRoutes } from './routes/calls.ts';
import { queueRoutes } from './routes/queues.ts';
import { triggerGuard } from './trigger-guard.ts';

/** The gateway's HTTP surface. Routes stay thin; the work happens in the modules they call. */
export function createApp(deps: AppDeps): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.route('/function', invokeRoutes(deps));
  app.use('/system/functions/*', triggerGuard(deps));
  app.route('/system/functions', functionRoutes(deps));
  app.route('/async-function', asyncRoutes(deps));
  app.route('/calls', callRoutes(deps));
  app.route('/queues', queueRoutes(deps));
  app.notFound(notFoundRoute);
  app.onError(onError);
  return app;
}
