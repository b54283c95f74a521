/**
 * Single flight: concurrent asks for the same key share one build. A failed build is forgotten,
 * so the next ask builds again. Shared by the server (session builds) and the baseline.
 */
export class SingleFlight<K, V> {
  private readonly flights = new Map<K, Promise<V>>();
  run(key: K, build: () => Promise<V>): Promise<V> {
    let p = this.flights.get(key);
    if (!p) {
      p = build().finally(() => this.flights.delete(key));
      this.flights.set(key, p);
    }
    return p;
  }
  get inFlight(): number {
    return this.flights.size;
  }
}
