import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { HearthError } from './errors.ts';

/** A function name: DNS-label-like, so it works in URLs, queue names and image repositories. */
export const FUNCTION_NAME = /^[a-z][a-z0-9-]{0,62}$/;

export const functionName = z
  .string()
  .regex(FUNCTION_NAME, 'must start with a lowercase letter and hold only a-z, 0-9 and "-" (at most 63 characters)');

export const RUNTIMES = ['node', 'python', 'exec', 'image'] as const;
export type RuntimeKind = (typeof RUNTIMES)[number];

/** A BullMQ queue name a producer may use: BullMQ forbids ':' (its key separator). */
export const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const triggerSchema = z.union([
  z.object({
    queue: z.string().regex(QUEUE_NAME, 'must be 1-128 characters of A-Z, a-z, 0-9, ".", "_" or "-" (BullMQ forbids ":")'),
    attempts: z.number().int().min(1).max(100).default(1),
    backoff: z
      .object({ type: z.enum(['fixed', 'exponential']), delay: z.number().int().min(0) })
      .optional(),
    concurrency: z.number().int().min(1).max(1000).optional(),
    /**
     * Up to this many jobs per call, as one CloudEvents batch (Lambda's batch size for
     * queues). Absent or 1: one job per call.
     */
    batchSize: z.number().int().min(1).max(100).optional(),
  }).strict(),
  z.object({
    // 5 fields, or 6 with seconds first (BullMQ's cron-parser reads both).
    cron: z.string().refine((v) => [5, 6].includes(v.trim().split(/\s+/).length), 'must have 5 fields (or 6, seconds first)'),
    tz: z.string().min(1).optional(),
  }).strict(),
]);

/** `hearth.yaml`, as DESIGN.md describes it. Defaults are applied here and nowhere else. */
export const functionSpecSchema = z
  .object({
    name: functionName,
    runtime: z.enum(RUNTIMES).default('node'),
    handler: z.string().min(1).optional(),
    image: z.string().min(1).optional(),
    isolation: z.enum(['container', 'vm']).default('container'),
    memoryMb: z.number().int().min(16).max(65536).default(128),
    cpu: z.number().positive().max(64).default(0.5),
    timeoutMs: z.number().int().min(1).max(15 * 60 * 1000).default(10000),
    concurrency: z.number().int().min(1).max(1000).default(1),
    /** Most processes and threads at once in one instance: a fork bomb stops here. */
    pids: z.number().int().min(8).max(32768).default(128),
    /**
     * `true`: the instance gets a network interface with a route out through the host (a veth
     * pair). `false`, the default: loopback only.
     */
    egress: z.boolean().default(false),
    /** `key`: `/function/NAME` needs an API key too (private); `none`: public, the default. */
    auth: z.enum(['none', 'key']).default('none'),
    /** An async call that waited in the queue longer than this is dropped and recorded as expired (Lambda's default: 6 h). */
    maxEventAgeSec: z.number().int().min(1).max(7 * 24 * 3600).default(21600),
    scale: z
      .object({
        minWarm: z.number().int().min(0).default(0),
        maxInstances: z.number().int().min(1).default(10),
        idleTtlSec: z.number().int().min(0).default(300),
      })
      .strict()
      .default({ minWarm: 0, maxInstances: 10, idleTtlSec: 300 }),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid environment variable name'), z.coerce.string()).default({}),
    triggers: z.array(triggerSchema).default([]),
  })
  .strict()
  .superRefine((spec, ctx) => {
    if (spec.runtime === 'image' && !spec.image) {
      ctx.addIssue({ code: 'custom', path: ['image'], message: 'is required with runtime: image' });
    }
    if (spec.runtime !== 'image' && spec.image) {
      ctx.addIssue({ code: 'custom', path: ['image'], message: 'is only allowed with runtime: image' });
    }
    if (spec.egress && spec.isolation === 'vm') {
      ctx.addIssue({ code: 'custom', path: ['egress'], message: 'is not supported with isolation: vm yet (a microVM has no network device); use isolation: container' });
    }
    if (spec.runtime !== 'image' && !spec.handler) {
      ctx.addIssue({ code: 'custom', path: ['handler'], message: `is required with runtime: ${spec.runtime}` });
    }
  });

export type FunctionSpec = z.output<typeof functionSpecSchema>;
export type FunctionSpecInput = z.input<typeof functionSpecSchema>;

type Issue = z.core.$ZodIssue;

/**
 * Where a value matched none of a union's shapes (a trigger is a queue or a cron), the
 * shape it missed by the least says what is wrong: `triggers.0.batchSize: Invalid input:
 * expected int`, not `triggers.0: Invalid input`.
 */
function closestIssue(issue: Issue): Issue {
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return issue;
  const branch = [...issue.errors].sort((a, b) => a.length - b.length)[0]!;
  const inner = branch[0];
  return inner ? closestIssue({ ...inner, path: [...issue.path, ...inner.path] } as Issue) : issue;
}

/** Names the first bad field: `hearth.yaml: memoryMb: Too small: expected number to be >=16`. */
export function describeZodError(err: z.ZodError, source?: string): string {
  const first = err.issues[0];
  if (!first) return `${source ?? 'input'} is invalid`;
  const issue = closestIssue(first);
  const where = issue.path.length ? issue.path.join('.') : '(top level)';
  return `${source ? `${source}: ` : ''}${where}: ${issue.message}`;
}

export function parseFunctionSpec(value: unknown, source = 'function spec'): FunctionSpec {
  const result = functionSpecSchema.safeParse(value);
  if (!result.success) {
    throw new HearthError('INVALID_ARGUMENT', describeZodError(result.error, source), {
      details: { issues: result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  return result.data;
}

export function parseFunctionSpecYaml(text: string, source = 'hearth.yaml'): FunctionSpec {
  let value: unknown;
  try {
    value = parseYaml(text);
  } catch (err) {
    throw new HearthError('INVALID_ARGUMENT', `${source}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return parseFunctionSpec(value, source);
}
