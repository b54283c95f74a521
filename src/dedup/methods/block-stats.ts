/** Per-block and per-tensor statistics the methods order proposals by. */
import type { ModelEntry } from '../../catalog/catalog.ts';

/** The 75th percentile of a block's values (netsDB's magnitude). */
export function quantile75(v: Float32Array): number {
  const s = Float32Array.from(v).sort();
  return s[Math.min(s.length - 1, Math.floor(0.75 * (s.length - 1)))];
}

function floats(b: Uint8Array): Float32Array {
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Squared L2 norm of each tensor (float32 tensors; 0 for others). */
export function tensorEnergy(model: ModelEntry, weights: Uint8Array[]): number[] {
  return model.tensors.map((t, i) => {
    if (t.dtype !== 'float32') return 0;
    const f = floats(weights[i]);
    let e = 0;
    for (let k = 0; k < f.length; k++) e += f[k] * f[k];
    return e;
  });
}

/** Min and max value of each float32 tensor (netsDB's per-layer normalisation). */
export function tensorRange(model: ModelEntry, weights: Uint8Array[]): { min: number; max: number }[] {
  return model.tensors.map((t, i) => {
    if (t.dtype !== 'float32') return { min: 0, max: 0 };
    const f = floats(weights[i]);
    let min = Infinity;
    let max = -Infinity;
    for (let k = 0; k < f.length; k++) {
      if (f[k] < min) min = f[k];
      if (f[k] > max) max = f[k];
    }
    return { min, max };
  });
}
