/**
 * The metrics a gate exposes and docs/operations-guide.md: every metric is in the guide's table,
 * every metric its alert rules use exists, and counters an alert watches have their series from
 * the start (an increase() over a series born with its first event sees nothing).
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { createGateMetrics } from '../../src/ops/metrics.js';

const guide = readFileSync(new URL('../../docs/operations-guide.md', import.meta.url), 'utf8');

t.test(
  "every metric is in the operations guide's table, and its alerts use only metrics that exist",
  async (t) => {
    const metrics = createGateMetrics();
    const names = (await metrics.registry.getMetricsAsJSON())
      .map((m) => m.name)
      .filter((n) => !n.startsWith('dockgate_process_'));
    for (const name of names)
      t.match(guide, new RegExp(`^\\| \`${name}\` +\\|`, 'm'), `${name} is in the table`);
    const rules = guide.slice(guide.indexOf('# rules.yml'));
    for (const used of new Set(rules.match(/dockgate_[a-z_]+/g) ?? [])) {
      t.ok(names.includes(used), `the alert rules' ${used} exists`);
    }
  },
);

t.test('dockgate_reloads_total has its ok and failed series at 0 before any reload', async (t) => {
  const text = await createGateMetrics().registry.metrics();
  t.match(text, /^dockgate_reloads_total\{outcome="ok"\} 0$/m);
  t.match(text, /^dockgate_reloads_total\{outcome="failed"\} 0$/m);
});
