import cliProgress from 'cli-progress';

/** What the registry client reports while uploading a blob (ProgressEvent in @hearth/oci). */
export interface BlobProgress {
  digest: string;
  done: number;
  total: number;
}

/** Per-blob upload progress: bars on a terminal, one plain line per finished blob otherwise. */
export interface ProgressReporter {
  onProgress(e: BlobProgress): void;
  /** Stops the bars; safe to call twice. */
  stop(): void;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['kB', 'MB', 'GB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

export function createProgress(stream: NodeJS.WriteStream = process.stderr): ProgressReporter {
  return stream.isTTY ? barProgress(stream) : lineProgress(stream);
}

function barProgress(stream: NodeJS.WriteStream): ProgressReporter {
  const multi = new cliProgress.MultiBar(
    {
      stream,
      format: '  {digest} [{bar}] {percentage}% {size}',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  let stopped = false;
  return {
    onProgress(e) {
      if (stopped) return;
      const payload = { digest: short(e.digest), size: formatBytes(e.total) };
      const bar = bars.get(e.digest);
      if (bar) bar.update(e.done, payload);
      else bars.set(e.digest, multi.create(Math.max(e.total, 1), e.done, payload));
    },
    stop() {
      if (stopped) return;
      stopped = true;
      multi.stop();
    },
  };
}

function lineProgress(stream: NodeJS.WritableStream): ProgressReporter {
  const finished = new Set<string>();
  return {
    onProgress(e) {
      // Lines, not bars: a log file or a CI console wants one entry per blob, not 100.
      if (e.done < e.total || finished.has(e.digest)) return;
      finished.add(e.digest);
      stream.write(`  pushed ${short(e.digest)} (${formatBytes(e.total)})\n`);
    },
    stop() {},
  };
}
