/** The progress line: silent for quick work, one line with the duration for slow work. */
import t from 'tap';
import { withProgress } from '../../src/cli/progress.js';

function sink() {
  let text = '';
  return { write: (s: string) => (text += s), text: () => text };
}

t.test('quick work prints nothing', async (t) => {
  const out = sink();
  t.equal(await withProgress(out, 'generating', Promise.resolve(42), 50), 42);
  t.equal(out.text(), '');
});

t.test('slow work says what it does and how long it took', async (t) => {
  const out = sink();
  const slow = new Promise((resolve) => setTimeout(() => resolve('key'), 120));
  t.equal(await withProgress(out, 'generating the CA key', slow, 20), 'key');
  t.match(out.text(), /^dockgate: generating the CA key\.\.\. done in \d+\.\d s\n$/);
});

t.test('a failure still ends the line and passes the error on', async (t) => {
  const out = sink();
  const failing = new Promise((_, reject) => setTimeout(() => reject(new Error('boom')), 60));
  await t.rejects(withProgress(out, 'working', failing, 10), /boom/);
  t.match(out.text(), /failed after \d+\.\d s\n$/);
});
