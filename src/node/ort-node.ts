/**
 * Node's default runtime is onnxruntime-node (native CPU, ~3x faster than onnxruntime-web on conv
 * models, and it runs on input tensors without copying them, which shared weights rely on).
 * Importing this module registers it; the browser entry never does. onnxruntime-web stays
 * available in Node by passing `ort: await loadOrt('web')`.
 */
import { setDefaultOrt } from '../runtime/ort.ts';

setDefaultOrt('node');
