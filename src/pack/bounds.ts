/**
 * Lower bounds on the page count under netsDB's rule.
 *
 * Chain bound: order the tensors t1..tn and give each page to the first tensor in that order that
 * reads it. Blocks that t_k needs and no earlier tensor needs can only sit on pages given to t_k
 * (any earlier reader would have to need them), so
 *   pages >= sum_k ceil(|T_k minus (T_1 ∪ .. ∪ T_k-1)| / blocksPerPage)
 * for every order; we take the best order (all orders up to 8 tensors, else greedy orders). With
 * one order it is ceil(|T_1|/l) + ..., always >= ceil(distinct/l). When a packing reaches it, the
 * packing is optimal.
 */
import { classSize, type BlockClasses } from './classes.ts';
import { trivialLowerBound, type PackingProblem } from './problem.ts';

export interface LowerBounds {
  /** ceil(distinct blocks / blocks per page). */
  trivial: number;
  /** The chain bound (>= trivial). */
  chain: number;
  /** The tensor order that gives the chain bound. */
  chainOrder: number[];
  /** True when every order was tried (small cases). */
  chainExhaustive: boolean;
}

export function lowerBounds(p: PackingProblem, classes: BlockClasses): LowerBounds {
  const l = p.blocksPerPage;
  const n = p.nTensors;
  const classesOf: number[][] = Array.from({ length: n }, () => []);
  for (let c = 0; c < classes.nClasses; c++) for (const t of classes.classTensors[c]) classesOf[t].push(c);
  const size = Array.from({ length: classes.nClasses }, (_, c) => classSize(classes, c));
  const seenBy = new Int32Array(classes.nClasses); // how many placed tensors need class c
  const newBlocks = (t: number) => { let s = 0; for (const c of classesOf[t]) if (seenBy[c] === 0) s += size[c]; return s; };
  const place = (t: number, d: number) => { for (const c of classesOf[t]) seenBy[c] += d; };
  let best = -1;
  let bestOrder: number[] = [];
  const used = new Uint8Array(n);
  const order: number[] = [];
  const exhaustive = n <= 8;
  if (exhaustive) {
    const dfs = (acc: number) => {
      if (order.length === n) { if (acc > best) { best = acc; bestOrder = order.slice(); } return; }
      for (let t = 0; t < n; t++) {
        if (used[t]) continue;
        const add = Math.ceil(newBlocks(t) / l);
        used[t] = 1; order.push(t); place(t, 1);
        dfs(acc + add);
        place(t, -1); order.pop(); used[t] = 0;
      }
    };
    dfs(0);
  } else {
    // Greedy orders from several starts: next = the tensor whose new blocks waste most of a page.
    const starts = Array.from({ length: n }, (_, t) => t)
      .sort((a, b) => (p.tensorStart[b + 1] - p.tensorStart[b]) - (p.tensorStart[a + 1] - p.tensorStart[a]))
      .slice(0, 16);
    for (const s of starts) {
      used.fill(0); seenBy.fill(0); order.length = 0;
      let acc = 0;
      let t = s;
      for (;;) {
        acc += Math.ceil(newBlocks(t) / l);
        used[t] = 1; order.push(t); place(t, 1);
        if (order.length === n) break;
        let pick = -1, pickScore = -Infinity;
        for (let u = 0; u < n; u++) {
          if (used[u]) continue;
          const nb = newBlocks(u);
          const score = Math.ceil(nb / l) - nb / l;
          if (score > pickScore) { pickScore = score; pick = u; }
        }
        t = pick;
      }
      if (acc > best) { best = acc; bestOrder = order.slice(); }
    }
  }
  const trivial = trivialLowerBound(p);
  return { trivial, chain: Math.max(best, trivial), chainOrder: bestOrder, chainExhaustive: exhaustive };
}
