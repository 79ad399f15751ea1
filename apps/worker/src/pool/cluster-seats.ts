import type { Redis } from 'ioredis';
import { workerStatusKey } from '@hearth/core';

/**
 * Seats for instances of one version across every worker: `maxInstances` and `minWarm` hold
 * for the cluster, not per worker. A worker takes a seat before it starts an instance and
 * gives it back when the instance is gone.
 */
export interface SeatBook {
  /** Takes a seat for `instanceId` when fewer than `max` are held; false when all are. */
  reserve(versionKey: string, instanceId: string, max: number): Promise<boolean>;
  release(versionKey: string, instanceId: string): Promise<void>;
}

/**
 * A seat held by a worker that has stopped publishing its status (killed) is free again once
 * that status expires, unless the seat is younger than this: it may have been taken in the
 * moment before the worker's first status write landed.
 */
const FRESH_SEAT_MS = 5_000;

// KEYS[1] seats hash (instance id → "workerId|takenAtMs"). ARGV: instance id, worker id,
// max, now (ms), status key prefix, status key suffix, fresh ms. Seats of dead workers are
// dropped as they are counted, so one atomic pass both cleans and decides.
const RESERVE = `
local seats = redis.call('HGETALL', KEYS[1])
local held = 0
local now = tonumber(ARGV[4])
for i = 1, #seats, 2 do
  local value = seats[i + 1]
  local sep = string.find(value, '|', 1, true)
  local worker = string.sub(value, 1, sep - 1)
  local at = tonumber(string.sub(value, sep + 1))
  if worker == ARGV[2] or now - at < tonumber(ARGV[7]) or redis.call('EXISTS', ARGV[5] .. worker .. ARGV[6]) == 1 then
    held = held + 1
  else
    redis.call('HDEL', KEYS[1], seats[i])
  end
end
if held >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[4])
return 1
`;

export class ClusterSeats implements SeatBook {
  private readonly statusPrefix: string;
  private readonly statusSuffix: string;

  constructor(
    private readonly redis: Redis,
    private readonly queuePrefix: string,
    private readonly workerId: string,
    private readonly freshSeatMs = FRESH_SEAT_MS,
  ) {
    // The status key with the worker id cut out: `<prefix>:worker:` + id + `:status`.
    const key = workerStatusKey(queuePrefix, '\u0000');
    [this.statusPrefix, this.statusSuffix] = key.split('\u0000') as [string, string];
  }

  private key(versionKey: string): string {
    return `${this.queuePrefix}:seats:${versionKey}`;
  }

  async reserve(versionKey: string, instanceId: string, max: number): Promise<boolean> {
    const got = await this.redis.eval(RESERVE, 1, this.key(versionKey), instanceId, this.workerId, max, Date.now(), this.statusPrefix, this.statusSuffix, this.freshSeatMs);
    return got === 1;
  }

  async release(versionKey: string, instanceId: string): Promise<void> {
    await this.redis.hdel(this.key(versionKey), instanceId);
  }

  /** Drops the seats an earlier run of this worker (same id) left: it holds no instance now. */
  async releaseLeftovers(): Promise<number> {
    let dropped = 0;
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.queuePrefix}:seats:*`, 'COUNT', 200);
      cursor = next;
      for (const key of keys) {
        const seats = await this.redis.hgetall(key);
        const mine = Object.entries(seats).filter(([, v]) => v.startsWith(`${this.workerId}|`)).map(([id]) => id);
        if (mine.length > 0) dropped += await this.redis.hdel(key, ...mine);
      }
    } while (cursor !== '0');
    return dropped;
  }
}
