import { lt } from 'drizzle-orm';
import { schema, type Db } from '@hearth/core/db';

const EVERY_MS = 60 * 60_000;

/**
 * Keeps the span store from growing forever: spans older than `days` are deleted at start
 * and every hour. Several workers doing it at once only repeat a cheap delete.
 */
export function startSpanRetention(db: Db, days: number, onError: (err: unknown) => void): () => void {
  const sweep = async () => {
    try {
      const cutoffUs = (Date.now() - days * 86_400_000) * 1000;
      await db.delete(schema.spans).where(lt(schema.spans.startUs, cutoffUs));
    } catch (err) {
      onError(err);
    }
  };
  void sweep();
  const timer = setInterval(() => void sweep(), EVERY_MS);
  timer.unref();
  return () => clearInterval(timer);
}
