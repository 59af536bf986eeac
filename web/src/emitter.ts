/**
 * A small typed event emitter: `E` maps each event name to the arguments its listeners get.
 * A listener that throws is logged and does not stop the others.
 *
 *     const e = new Emitter<{ change: []; frame: [presentedMs: number] }>();
 *     const off = e.on('frame', (ms) => …);
 *     e.emit('frame', 12.5);
 *     off();
 */

type Listener<A extends readonly unknown[]> = (...args: A) => void;

export class Emitter<E extends { [K in keyof E]: readonly unknown[] }> {
  private readonly lists = new Map<keyof E, Listener<never>[]>();

  /** Adds a listener (added twice, it is called twice); returns what removes it. */
  on<K extends keyof E>(name: K, fn: Listener<E[K]>): () => void {
    // One wrapper per subscription, so that removing it removes this subscription only.
    const entry: Listener<E[K]> = (...args) => fn(...args);
    this.list(name).push(entry);
    return () => {
      const list = this.list(name);
      const i = list.indexOf(entry);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Calls the listeners of `name` subscribed now, in the order they were added. */
  emit<K extends keyof E>(name: K, ...args: E[K]): void {
    for (const fn of [...this.list(name)]) {
      try {
        fn(...args);
      } catch (e) {
        console.error(`kelpie: ${String(name)} listener failed`, e);
      }
    }
  }

  /** How many listeners `name` has. */
  count(name: keyof E): number {
    return this.lists.get(name)?.length ?? 0;
  }

  private list<K extends keyof E>(name: K): Listener<E[K]>[] {
    let list = this.lists.get(name) as Listener<E[K]>[] | undefined;
    if (!list) {
      list = [];
      this.lists.set(name, list);
    }
    return list;
  }
}
