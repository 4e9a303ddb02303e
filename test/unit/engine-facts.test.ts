import t from 'tap';
import { buildkitIgnoresEntitlements } from '../../src/ops/engine-facts.js';

t.test("engines whose BuildKit lets a build's frontend start containers unchecked", async (t) => {
  for (const v of ['20.10.24+dfsg1', '23.0.10', '24.0.9', '25.0.0', '25.0.1', 'dev', ''])
    t.ok(buildkitIgnoresEntitlements(v), v);
  for (const v of ['25.0.2', '25.0.10', '25.1.0', '26.0.0', '28.2.2', '100.0.0'])
    t.notOk(buildkitIgnoresEntitlements(v), v);
});
