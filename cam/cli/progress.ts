// The eval progress bar (cli-progress): images done, rate and ETA on stderr (for a queued run also the
// workers alive and the images failed). On a terminal it redraws in place; in a log (no TTY) it prints a
// line every few seconds, so long runs stay readable.

import cliProgress from 'cli-progress';

export class Progress {
  private readonly bar: cliProgress.SingleBar | null;
  private readonly start = performance.now();
  private done = 0;

  /** `queue`: also show the workers alive and the images failed (a queued run). */
  constructor(private readonly total: number, private readonly skipped: number, enabled: boolean, queue = false) {
    this.bar = enabled
      ? new cliProgress.SingleBar(
          {
            format: `eval [{bar}] {percentage}% {value}/{total} images | {rate} img/s | elapsed {elapsed} | ETA {left}${queue ? ' | {workers} workers | {failed} failed' : ''}`,
            barsize: 28,
            barCompleteChar: '#',
            barIncompleteChar: '-',
            stream: process.stderr,
            noTTYOutput: true,
            notTTYSchedule: 5000,
            etaBuffer: 20,
            hideCursor: false,
          },
          cliProgress.Presets.legacy,
        )
      : null;
    this.bar?.start(total, skipped, { rate: '0.00', elapsed: clock(0), left: clock(NaN), workers: '?', failed: 0 });
  }

  tick(): void {
    this.update(this.skipped + this.done + 1);
  }

  /** Sets the images finished (done or failed) so far; `queue` fills the queue fields. */
  update(finished: number, queue?: { workers: number; failed: number }): void {
    this.done = finished - this.skipped;
    const secs = (performance.now() - this.start) / 1000;
    // Rate and ETA from this run's images only (resumed images cost nothing).
    const rate = this.done / Math.max(secs, 1e-9);
    const left = (this.total - this.skipped - this.done) / rate;
    this.bar?.update(finished, { rate: rate.toFixed(2), elapsed: clock(secs), left: clock(left), ...queue });
  }

  stop(): void {
    this.bar?.stop();
  }
}

/** m:ss, or --:-- when unknown. */
function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
