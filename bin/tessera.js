#!/usr/bin/env node
// The one `tessera` bin. Sources are TypeScript run through tsx, so a clone works
// right after `npm install` with no build step.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('../control-plane/cli/main.ts');
await main(process.argv.slice(2));
