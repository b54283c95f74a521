/** The runtime flags `serve` and `serve-bench` share (executor, eviction policy, onnxruntime backend), defined once. */
import type { Command } from 'commander';
import { loadOrt, type OrtBackend } from '../runtime/ort.ts';
import type { ExecutorKind, ServerOptions } from '../runtime/server.ts';
import type { PolicyName } from '../pool/policies.ts';

export interface RuntimeFlags {
  executor: string;
  policy: string;
  ort?: string;
}

/** Adds --executor, --policy and --ort to `command`. */
export function withRuntimeFlags(command: Command): Command {
  return command
    .option('--executor <kind>', 'auto | kernel | shared-weights | own-weights', 'auto')
    .option('--policy <name>', 'page eviction policy', 'dedup')
    .option('--ort <backend>', 'onnxruntime backend: node | web (default: node, or web with a notice when onnxruntime-node is not installed)');
}

/** The runtime Server options the flags name, with the chosen onnxruntime loaded. */
export async function runtimeOptions(o: RuntimeFlags): Promise<Pick<ServerOptions, 'ort' | 'executor' | 'policy'>> {
  return { ort: await loadOrt(o.ort as OrtBackend | undefined), executor: o.executor as ExecutorKind | 'auto', policy: o.policy as PolicyName };
}
