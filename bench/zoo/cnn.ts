/**
 * The zoo's CNN: (Conv 3x3 + ReLU [+ MaxPool 2]) x n, global average pool, one Linear, written as
 * PyTorch 1.13 exports such a model in eval mode (BatchNorm folded into the Conv weights and
 * biases): Conv / Relu / MaxPool / GlobalAveragePool / Flatten / Gemm, opset 17, input
 * `input` [batch, 1, 28, 28], output `logits` [batch, classes]: the op list of a CNN that
 * PyTorch 1.13 exported here at opset 17.
 */
import type { Gemm } from '../../src/kernels/gemm.ts';
import { InvalidModelError } from '../../src/errors.ts';
import { Conv3x3, Linear, MaxPool2, MeanPool, Relu, Sequential, bindGemm, type Module, type Param } from './nn.ts';
import { GraphWriter, readInitializers } from './onnx-graph.ts';
import { Rng } from './train.ts';
import type { Architecture } from './family.ts';
import type { ZooSize } from './build.ts';

export interface CnnConfig {
  /** Output channels of each conv. */
  channels: number[];
  /** A 2x2 max pool after conv i. */
  poolAfter: boolean[];
}

/** A network of a family: the whole net, its backbone (features) and its classifier head. */
export interface FamilyNet {
  net: Sequential;
  backbone: Sequential;
  head: Linear;
}

export function createCnn(gemm: Gemm, cfg: CnnConfig, classes: number, seed: number): FamilyNet {
  const rng = new Rng(seed);
  const layers: Module[] = [];
  let side = 28;
  let inC = 1;
  cfg.channels.forEach((outC, i) => {
    layers.push(new Conv3x3(`features.${i}`, inC, outC, side, rng));
    layers.push(new Relu(side * side * outC));
    if (cfg.poolAfter[i]) {
      const pool = new MaxPool2(side, outC);
      layers.push(pool);
      side = pool.outSide;
    }
    inC = outC;
  });
  layers.push(new MeanPool(side * side, inC));
  const backbone = new Sequential(layers);
  const head = new Linear('head', inC, classes, rng, 1, Math.sqrt(1 / inC));
  const net = new Sequential([backbone, head]);
  bindGemm(net, gemm);
  return { net, backbone, head };
}

/** Every float parameter of a net, by name. */
export function paramsByName(net: Module): Map<string, Param> {
  return new Map(net.params.map((p) => [p.name, p]));
}

/** Loads a model's initializers into a freshly created net of the same shape. */
export function loadParams(net: Module, bytes: Uint8Array): void {
  const inits = readInitializers(bytes);
  for (const p of net.params) {
    const t = inits.get(p.name);
    if (!t || t.data.length !== p.value.length) throw new InvalidModelError('ONNX_MALFORMED', `zoo model has no initializer ${p.name} of ${p.value.length} floats: rebuild the zoo`);
    p.value.set(t.data);
  }
}

export function exportCnn(f: FamilyNet, opts: { graphName: string; docString: string }): Uint8Array {
  const g = new GraphWriter();
  let x = 'input';
  let convIndex = 0;
  let last = '';
  for (const layer of f.backbone.layers) {
    if (layer instanceof Conv3x3) {
      const path = `/features/features.${convIndex * 3}`;
      const w = g.weight(layer.weight.name, layer.weight.dims, layer.weight.value);
      const b = g.weight(layer.bias.name, layer.bias.dims, layer.bias.value);
      x = g.node('Conv', path, [x, w, b], { dilations: [1, 1], group: 1, kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1] });
      last = `features.${convIndex}`;
      convIndex++;
    } else if (layer instanceof Relu) {
      x = g.node('Relu', `/features/${last}/relu`, [x]);
    } else if (layer instanceof MaxPool2) {
      x = g.node('MaxPool', `/features/${last}/pool`, [x], { ceil_mode: 0, dilations: [1, 1], kernel_shape: [2, 2], pads: [0, 0, 0, 0], strides: [2, 2] });
    } else if (layer instanceof MeanPool) {
      x = g.node('GlobalAveragePool', '/features/avgpool', [x]);
    }
  }
  x = g.node('Flatten', '', [x], { axis: 1 });
  const hw = g.weight(f.head.weight.name, f.head.weight.dims, f.head.weight.value);
  const hb = g.weight(f.head.bias.name, f.head.bias.dims, f.head.bias.value);
  g.node('Gemm', '/head', [x, hw, hb], { alpha: { float: 1 }, beta: { float: 1 }, transB: 1 }, 'logits');
  return g.finish({
    graphName: opts.graphName, docString: opts.docString,
    input: ['input', ['batch', 1, 28, 28]], output: ['logits', ['batch', f.head.outDim]],
  });
}

const CNN_SIZES: Record<ZooSize, CnnConfig> = {
  // 1.08 M parameters, most of them in the convs at 3x3 resolution (cheap per sample).
  standard: { channels: [16, 32, 128, 256, 320], poolAfter: [true, true, true, false, false] },
  tiny: { channels: [8, 16, 32, 32], poolAfter: [true, true, true, false] },
};

export const cnnArchitecture: Architecture = {
  family: 'cnn',
  version: 1,
  inputDims: [1, 28, 28],
  describe: (size) => ({ ...CNN_SIZES[size], kernel: 3, padding: 1, pool: 'max 2x2 stride 2', head: 'global average pool + Linear' }),
  create: (gemm, size, classes, seed) => createCnn(gemm, CNN_SIZES[size], classes, seed),
  export: exportCnn,
  budget: (size) => size === 'standard'
    ? { trainSamples: 12000, testSamples: 4000, batch: 64, base: 12000, head: 8000, finetune: 4000, lora: 4000, version: 4000, scratch: 4000, loraRank: 8,
      lr: { base: 2e-3, head: 3e-3, finetune: 2e-4, lora: 2e-3, version: 3e-4 } }
    : { trainSamples: 3000, testSamples: 1000, batch: 32, base: 2000, head: 1500, finetune: 1000, lora: 1000, version: 500, scratch: 500, loraRank: 4,
      lr: { base: 3e-3, head: 3e-3, finetune: 5e-4, lora: 3e-3, version: 3e-4 } },
};
