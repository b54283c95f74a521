#!/usr/bin/env node
// The CLI bundled by build/build.mjs (esbuild) from src/cli/bin.ts.
import '../build/out/tessera.mjs';
