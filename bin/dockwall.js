#!/usr/bin/env -S node --max-semi-space-size=4
// dockwall's command line (the bundle built by `npm run build`, which `npm ci` runs).
// A small young generation keeps peak memory down on big policies at no cost in time.
import "../dist/dockwall.mjs";
