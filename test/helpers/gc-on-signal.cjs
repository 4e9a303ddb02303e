// Test-only preload (node --expose-gc --require this): on SIGWINCH the gate runs a full garbage
// collection, so a memory test compares live objects rather than whatever garbage V8 has not yet
// swept. SIGWINCH because the gate handles SIGHUP, SIGUSR2, SIGTERM and SIGINT itself, and node
// keeps SIGUSR1 for its inspector.
'use strict';
process.on('SIGWINCH', () => {
  if (typeof globalThis.gc === 'function') globalThis.gc();
});
