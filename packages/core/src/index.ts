export * from './errors.ts';
export * from './config.ts';
export * from './spec.ts';
export * from './jobs.ts';
export * from './redis.ts';
export * from './triggers.ts';
export * from './secret-box.ts';
export * from './worker-keys.ts';
