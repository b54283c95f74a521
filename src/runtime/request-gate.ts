/**
 * The request gate: at most `concurrency` requests run at once, the rest wait in FIFO order.
 * Shared by the server and the benchmark's baseline, so both queue requests the same way.
 */
import { InvalidArgumentError } from '../errors.ts';

export class RequestGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(readonly concurrency: number) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidArgumentError(`concurrency must be a positive integer, got ${concurrency}`);
  }
  /** Runs `fn` when a slot is free; the slot is released however `fn` ends. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) await new Promise<void>((r) => this.waiting.push(r));
    else this.running++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next(); // the slot passes straight to the next request
      else this.running--;
    }
  }
  get active(): number {
    return this.running;
  }
  get queued(): number {
    return this.waiting.length;
  }
}
