import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { InstanceStatus } from '@hearth/core';

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * The worker's Prometheus metrics. Names follow OpenTelemetry's FaaS metrics where they exist
 * (faas.invoke_duration, faas.init_duration, faas.coldstarts, faas.timeouts). The gateway's
 * /metrics sums every worker's registry.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly invocations = new Counter({ name: 'hearth_invocations_total', help: 'Calls by function and outcome', labelNames: ['function', 'status'], registers: [this.registry] });
  private readonly starts = new Counter({ name: 'hearth_call_starts_total', help: 'Calls by how their instance was found: warm, stemcell or cold', labelNames: ['function', 'start'], registers: [this.registry] });
  private readonly coldstarts = new Counter({ name: 'faas_coldstarts_total', help: 'Instances started for calls (cold or from a stem cell)', labelNames: ['function', 'start'], registers: [this.registry] });
  private readonly timeouts = new Counter({ name: 'faas_timeouts_total', help: 'Calls that timed out', labelNames: ['function'], registers: [this.registry] });
  private readonly invokeDuration = new Histogram({ name: 'faas_invoke_duration_seconds', help: 'Time a worker spent on a call, instance start included', labelNames: ['function', 'start'], buckets: DURATION_BUCKETS, registers: [this.registry] });
  private readonly initDuration = new Histogram({ name: 'faas_init_duration_seconds', help: 'Time to start an instance until it is ready', labelNames: ['function', 'start'], buckets: DURATION_BUCKETS, registers: [this.registry] });
  private readonly queueWaitSeconds = new Histogram({ name: 'hearth_queue_wait_seconds', help: 'Time from enqueue to a worker taking the call', labelNames: ['function'], buckets: DURATION_BUCKETS, registers: [this.registry] });
  private readonly instances = new Gauge({ name: 'hearth_instances', help: 'Instances by function and state', labelNames: ['function', 'state'], registers: [this.registry] });
  private readonly stemCells = new Gauge({ name: 'hearth_stem_cells', help: 'Stem cells by runtime and state', labelNames: ['runtime', 'state'], registers: [this.registry] });
  private readonly memoryUsed = new Gauge({ name: 'hearth_worker_memory_used_mb', help: 'Memory limits of the instances a worker holds', registers: [this.registry] });

  invoked(fn: string, status: string, start: string, ms: number): void {
    this.invocations.inc({ function: fn, status });
    this.starts.inc({ function: fn, start });
    if (status === 'timeout') this.timeouts.inc({ function: fn });
    this.invokeDuration.observe({ function: fn, start }, ms / 1000);
  }

  instanceStarted(fn: string, start: string, ms: number): void {
    this.coldstarts.inc({ function: fn, start });
    this.initDuration.observe({ function: fn, start }, ms / 1000);
  }

  queueWait(fn: string, ms: number): void {
    this.queueWaitSeconds.observe({ function: fn }, Math.max(0, ms) / 1000);
  }

  /** Gauges are set from the pool's state when the status is published. */
  setState(instances: InstanceStatus[], stemCells: Record<string, { ready: number; starting: number }>, memoryUsedMb: number): void {
    this.instances.reset();
    for (const i of instances) this.instances.inc({ function: i.function, state: i.state });
    this.stemCells.reset();
    for (const [runtime, c] of Object.entries(stemCells)) {
      this.stemCells.set({ runtime, state: 'ready' }, c.ready);
      this.stemCells.set({ runtime, state: 'starting' }, c.starting);
    }
    this.memoryUsed.set(memoryUsedMb);
  }
}
