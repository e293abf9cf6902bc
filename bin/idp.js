#!/usr/bin/env node
// Entry of the `idp` command. Node 22.18 and newer run the TypeScript sources directly.
import { run } from '../src/cli/main.ts';

await run(process.argv);
