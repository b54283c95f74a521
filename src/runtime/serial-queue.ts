/**
 * Runs onnxruntime calls one at a time. onnxruntime-web works on one WASM thread anyway, a
 * session released while another one runs was seen to fail inside the runtime (1.30), and on a
 * small machine two native runs at once only contend for the same cores.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(fn);
    this.tail = p.catch(() => undefined);
    return p;
  }
}
