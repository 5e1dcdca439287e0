#!/usr/bin/env node
// dockwall's command line (the bundle built by `npm run build`, which `npm ci` runs).
import "../dist/dockwall.mjs";
