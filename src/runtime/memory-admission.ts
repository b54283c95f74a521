/**
 * Memory admission: requests take their memory (build their executor, pin what their run reads)
 * one at a time, in arrival order, and run side by side once they hold it. A request whose memory
 * does not fit (CapacityError) keeps its turn and waits until a running request releases memory,
 * then tries again; later requests wait behind it, so none can starve it. It fails at once when
 * nothing is running (no release is coming: the request cannot fit the budget on its own), and
 * after `waitMs` of waiting (the server is overloaded: retry later).
 *
 * Why one turn at a time: two requests that each pinned part of their working set and then failed
 * for the rest used to release, wake each other and retry forever inside promise callbacks (a
 * livelock at concurrency 4 on PP-OCR cls at half its bytes, with no timer ever firing). With
 * turns, a failed attempt only waits for a real release by a request that already holds memory.
 */
import { CapacityError, InvalidArgumentError } from '../errors.ts';

interface Waiter {
  go: () => void;
}

export class MemoryAdmission {
  /** Requests admitted (holding memory) whose attempt has not ended. */
  private admittedNow = 0;
  private turnTaken = false;
  private readonly queue: Waiter[] = [];
  /** The turn holder waiting for a release, if any. */
  private onRelease?: () => void;
  /** Releases so far: an attempt that saw one while it ran tries again at once. */
  private releases = 0;
  /** Attempts that failed for memory and waited for a release. */
  waits = 0;

  constructor(readonly waitMs: number) {
    if (!(waitMs > 0)) throw new InvalidArgumentError(`the memory wait must be a positive number of milliseconds, got ${waitMs}`);
  }

  get running(): number {
    return this.admittedNow;
  }
  get queued(): number {
    return this.queue.length;
  }

  /**
   * Runs `attempt` in this request's turn. `attempt` calls `admitted()` once it holds all the
   * memory it needs (before it computes): the turn passes to the next request and this one counts
   * as running until `attempt` ends. An attempt that throws CapacityError before admitted() is
   * tried again after the next release. `what` names the request in errors.
   */
  async run<T>(what: string, attempt: (admitted: () => void) => Promise<T>): Promise<T> {
    const since = performance.now();
    await this.takeTurn(what, since);
    let holdsTurn = true;
    const passTurn = () => {
      if (!holdsTurn) return;
      holdsTurn = false;
      this.passTurn();
    };
    try {
      for (;;) {
        let admitted = false;
        const releasesBefore = this.releases;
        const admit = () => {
          if (admitted) return;
          admitted = true;
          this.admittedNow++;
          passTurn();
        };
        try {
          return await attempt(admit);
        } catch (e) {
          if (admitted || !(e instanceof CapacityError)) throw e;
          // Memory was released while this attempt ran: it may fit now.
          if (this.releases !== releasesBefore) continue;
          if (this.admittedNow === 0) {
            throw new CapacityError('BUDGET_EXCEEDED', `${what} does not fit the memory budget even with nothing else running and every idle page, tensor and session evicted (${e.message})`, { cause: e });
          }
          this.waits++;
          await this.awaitRelease(what, since, e);
        } finally {
          if (admitted) {
            this.admittedNow--;
            this.releases++;
            const r = this.onRelease;
            this.onRelease = undefined;
            r?.();
          }
        }
      }
    } finally {
      passTurn();
    }
  }

  private takeTurn(what: string, since: number): Promise<void> {
    if (!this.turnTaken) {
      this.turnTaken = true;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.queue.indexOf(w);
        if (i >= 0) this.queue.splice(i, 1);
        reject(this.timedOut(what, since));
      }, Math.max(0, this.waitMs - (performance.now() - since)));
      const w: Waiter = {
        go: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.queue.push(w);
    });
  }

  private passTurn(): void {
    const next = this.queue.shift();
    if (next) next.go();
    else this.turnTaken = false;
  }

  private awaitRelease(what: string, since: number, cause: CapacityError): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const left = this.waitMs - (performance.now() - since);
      if (left <= 0) return reject(this.timedOut(what, since, cause));
      const timer = setTimeout(() => {
        this.onRelease = undefined;
        reject(this.timedOut(what, since, cause));
      }, left);
      this.onRelease = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private timedOut(what: string, since: number, cause?: CapacityError): CapacityError {
    const waited = Math.round(performance.now() - since);
    return new CapacityError('BUDGET_EXCEEDED', `${what} waited ${waited} ms for memory held by running requests (limit ${this.waitMs} ms): the server is overloaded, retry later or raise the budget${cause ? ` (${cause.message})` : ''}`, cause ? { cause } : undefined);
  }
}
