/**
 * TEMPORARY (issue 6): `NODE_OPTIONS=--import <this file>` makes the real CLI (dist/src/cli.js)
 * load ./agent.js (src/agent.ts plus the services wiring) instead of dist/src/agent.js, until the
 * lead pastes that wiring into src/agent.ts.
 */
import { register } from 'node:module';

register(new URL('./resolve.js', import.meta.url));
