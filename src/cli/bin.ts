import '../node/ort-node.ts'; // the CLI runs on Node's default runtime, as the library does (onnxruntime-node, else onnxruntime-web with a notice)
import { main } from './main.ts';
await main();
