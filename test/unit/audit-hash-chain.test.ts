import t from 'tap';
import { createHash } from 'node:crypto';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GENESIS_HASH, HashChain, checkLine, readChainStart } from '../../src/audit/hash-chain.js';
import { verifyChain } from '../../src/audit/chain-verify.js';

/** n pino-like lines linked by a fresh chain (or one continuing from `head`). */
function chainedLines(n: number, head = GENESIS_HASH, from = 0): { lines: string[]; head: string } {
  const chain = new HashChain(head);
  const lines: string[] = [];
  for (let i = from; i < from + n; i++) {
    lines.push(
      chain.link(`{"level":"audit","time":"2026-01-01T00:00:00.000Z","event":"request","i":${i}}\n`),
    );
  }
  return { lines, head: chain.head };
}

function writeLines(file: string, lines: string[]): void {
  writeFileSync(file, lines.join(''));
}

t.test('each line carries prev and hash, and an auditor can recompute the hash as documented', async (t) => {
  const { lines } = chainedLines(3);
  let prev = GENESIS_HASH;
  for (const line of lines) {
    t.ok(line.endsWith('"}\n'), 'one line, newline-terminated');
    const parsed = JSON.parse(line) as { prev: string; hash: string; i: number };
    t.equal(parsed.prev, prev, 'prev is the hash of the line before');
    // The documented recipe: drop `,"hash":"<64 hex>"` from the line, SHA-256 what is left.
    const unhashed = line.trimEnd().replace(/,"hash":"[0-9a-f]{64}"\}$/, '}');
    t.equal(createHash('sha256').update(unhashed).digest('hex'), parsed.hash);
    prev = parsed.hash;
  }
});

t.test('a line that is not a JSON object is wrapped so that it is still chained', async (t) => {
  const line = new HashChain().link('not json\n');
  t.same(JSON.parse(line).line, 'not json');
  t.equal(checkLine(Buffer.from(line.trimEnd())).kind, 'ok');
});

t.test('a chain of 20 000 lines verifies, reporting count, anchor and last hash', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'audit.log');
  const { lines, head } = chainedLines(20_000);
  writeLines(file, lines);
  const report = await verifyChain([file]);
  t.same(report, { ok: true, lines: 20_000, anchor: GENESIS_HASH, head, restarts: [], torn: [] });
});

t.test('verify names an edited line', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const { lines } = chainedLines(10);
  lines[4] = lines[4]!.replace('"request"', '"requesT"');
  writeLines(file, lines);
  const report = await verifyChain([file]);
  t.match(report, { ok: false, kind: 'edited', at: { file, line: 5 }, goodLines: 4 });
  if (!report.ok) t.match(report.why, /line 5 of .* was changed after it was written/);
});

t.test('verify names a deleted line', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const { lines } = chainedLines(10);
  lines.splice(6, 1);
  writeLines(file, lines);
  const report = await verifyChain([file]);
  t.match(report, { ok: false, kind: 'deleted', at: { line: 7 } });
  if (!report.ok) t.match(report.why, /line 7 of .* does not follow line 6/);
});

t.test('verify names an inserted line, even one with a correctly computed hash', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const { lines } = chainedLines(10);
  // A forger who knows the recipe links a new line to line 3; line 4 still points at line 3.
  const prev3 = (JSON.parse(lines[2]!) as { hash: string }).hash;
  const forged = new HashChain(prev3).link('{"level":"audit","event":"request","i":"forged"}\n');
  t.equal(checkLine(Buffer.from(forged.trimEnd())).kind, 'ok', 'the forged line is self-consistent');
  lines.splice(3, 0, forged);
  writeLines(file, lines);
  const report = await verifyChain([file]);
  t.match(report, { ok: false, kind: 'inserted', at: { line: 5 } });
  if (!report.ok) t.match(report.why, /line 4 of .* up to line 4 of .* were inserted or moved there/);
});

t.test('verify names an inserted line with a made-up prev', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const { lines } = chainedLines(10);
  lines.splice(3, 0, new HashChain('ab'.repeat(32)).link('{"event":"request","i":"forged"}\n'));
  writeLines(file, lines);
  const report = await verifyChain([file]);
  t.match(report, { ok: false, kind: 'inserted', at: { line: 4 } });
  if (!report.ok) t.match(report.why, /line 4 of .* was inserted: the line after it continues line 3/);
});

t.test('verify names reordered lines', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const { lines } = chainedLines(10);
  [lines[5], lines[6]] = [lines[6]!, lines[5]!];
  writeLines(file, lines);
  const report = await verifyChain([file]);
  t.match(report, { ok: false, kind: 'reordered', at: { line: 6 } });
  if (!report.ok) t.match(report.why, /line 6 of .* belongs after line 7/);
});

t.test('verify names a duplicated line', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const { lines } = chainedLines(10);
  lines.splice(3, 0, lines[2]!);
  writeLines(file, lines);
  const report = await verifyChain([file]);
  t.match(report, { ok: false, kind: 'inserted', at: { line: 4 } });
  if (!report.ok) t.match(report.why, /line 4 of .* is a copy of line 3/);
});

t.test('verify names a line cut short, and a line with a trailing carriage return', async (t) => {
  const dir = t.testdir();
  const { lines } = chainedLines(5);
  const torn = join(dir, 'torn.log');
  writeFileSync(torn, lines.join('') + lines[0]!.slice(0, 40));
  t.match(await verifyChain([torn]), { ok: false, kind: 'unchained', at: { line: 6 } });
  const crlf = join(dir, 'crlf.log');
  lines[2] = lines[2]!.replace(/\n$/, '\r\n');
  writeLines(crlf, lines);
  t.match(await verifyChain([crlf]), { ok: false, at: { line: 3 } }, 'every byte counts');
});

t.test(
  'a line cut short that the next line links past (a crash, then a restart) is noted, and checking goes on after it',
  async (t) => {
    const dir = t.testdir();
    // As the gate writes it: three lines, a crash mid-line, then the restart's audit-log-opened
    // line continuing the third, and four more.
    const chain = new HashChain();
    const link = (text: string): string => chain.link(`${text}\n`);
    const request = (i: number): string =>
      link(`{"level":"audit","time":"2026-01-01T00:00:00.000Z","event":"request","i":${i}}`);
    const lines = [
      request(0),
      request(1),
      request(2),
      link('{"level":"audit","event":"audit-log-opened","file":"a.log","continues":"file-tail"}'),
      request(3),
      request(4),
      request(5),
      request(6),
    ];
    const withTorn = (): string[] => [
      ...lines.slice(0, 3),
      '{"level":"audit","event":"requ\n',
      ...lines.slice(3),
    ];
    const file = join(dir, 'crash.log');
    writeLines(file, withTorn());
    t.match(
      await verifyChain([file]),
      { ok: true, lines: 8, torn: [{ line: 4 }], restarts: [] },
      'the torn line is listed; every whole line verifies',
    );

    const edited = withTorn();
    edited[6] = edited[6]!.replace('"i":4', '"i":44');
    writeLines(file, edited);
    t.match(
      await verifyChain([file]),
      { ok: false, kind: 'edited', at: { line: 7 } },
      'an edit after it is found',
    );

    const deleted = withTorn();
    deleted.splice(6, 1);
    writeLines(file, deleted);
    t.match(
      await verifyChain([file]),
      { ok: false, kind: 'deleted', at: { line: 7 } },
      'a deletion after it is found, at the right line',
    );

    const notLinkedPast = [...lines.slice(0, 3), '{"level":"audit","event":"requ\n', ...lines.slice(4)];
    writeLines(file, notLinkedPast);
    t.match(
      await verifyChain([file]),
      { ok: false, kind: 'unchained', at: { line: 4 } },
      'a junk line in place of a whole one breaks the chain there',
    );
  },
);

t.test('a whole forged line inserted between two real lines breaks the chain at it', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  const { lines } = chainedLines(6);
  const forged =
    '{"level":"audit","time":"2026-01-01T00:00:00.000Z","event":"request","client":{"cn":"alice"},"operation":"container.delete","status":204}\n';
  writeLines(file, [...lines.slice(0, 3), forged, ...lines.slice(3)]);
  const report = await verifyChain([file]);
  t.match(report, { ok: false, kind: 'unchained', at: { line: 4 } }, 'a whole JSON line is no torn line');
  if (!report.ok) t.match(report.why, /not written by the gate/);
  // Cut short to pass for a torn line, it is still refused: no restart of the gate follows it.
  writeLines(file, [...lines.slice(0, 3), forged.slice(0, 60) + '\n', ...lines.slice(3)]);
  t.match(await verifyChain([file]), { ok: false, kind: 'unchained', at: { line: 4 } }, 'cut short');
});

t.test(
  'a torn first line followed by the restart from genesis verifies; after a line, genesis does not',
  async (t) => {
    const file = join(t.testdir(), 'audit.log');
    const opened = new HashChain().link(
      '{"level":"audit","event":"audit-log-opened","file":"a.log","continues":"genesis"}\n',
    );
    writeLines(file, ['{"level":"audit","ev\n', opened]);
    t.match(await verifyChain([file]), { ok: true, lines: 1, torn: [{ line: 1 }] });
    const { lines } = chainedLines(2);
    writeLines(file, [...lines, '{"level":"audit","ev\n', opened]);
    t.match(await verifyChain([file]), { ok: false, kind: 'unchained', at: { line: 3 } });
  },
);

t.test('rotated files verify as one chain in order, and the link between them is checked', async (t) => {
  const dir = t.testdir();
  const first = chainedLines(5);
  const second = chainedLines(5, first.head, 5);
  const old = join(dir, 'audit.log.1');
  const current = join(dir, 'audit.log');
  writeLines(old, first.lines);
  writeLines(current, second.lines);
  t.match(await verifyChain([old, current]), {
    ok: true,
    lines: 10,
    anchor: GENESIS_HASH,
    head: second.head,
  });
  t.match(await verifyChain([current]), { ok: true, lines: 5, anchor: first.head }, 'alone: anchored');
  // In the wrong order the old file's genesis line reads as a restart: accepted, but reported.
  t.match(
    await verifyChain([current, old]),
    { ok: true, anchor: first.head, restarts: [{ file: old, line: 1 }] },
    'wrong order',
  );
  writeLines(old, first.lines.slice(0, 4));
  t.match(await verifyChain([old, current]), { ok: false, kind: 'deleted', at: { file: current, line: 1 } });
});

t.test('a restart from genesis in the middle is accepted and reported', async (t) => {
  const file = join(t.testdir(), 'audit.log');
  writeLines(file, [...chainedLines(3).lines, ...chainedLines(2).lines]);
  t.match(await verifyChain([file]), { ok: true, lines: 5, restarts: [{ file, line: 4 }] });
});

t.test('readChainStart continues from the last line, and notices a torn or unchained tail', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'audit.log');
  writeFileSync(file, '');
  t.same(readChainStart(file), { head: GENESIS_HASH, continues: 'genesis', endsMidLine: false });
  // Long lines, so that the last one straddles the 64 KiB chunks the reader goes back by.
  const chain = new HashChain();
  for (let i = 0; i < 5; i++)
    appendFileSync(file, chain.link(`{"event":"request","pad":"${'x'.repeat(50_000)}"}\n`));
  t.same(readChainStart(file), { head: chain.head, continues: 'file-tail', endsMidLine: false });
  appendFileSync(file, '{"event":"req');
  t.same(readChainStart(file), { head: chain.head, continues: 'file-tail', endsMidLine: true });
  appendFileSync(file, 'uest"}\n');
  t.same(readChainStart(file), { head: GENESIS_HASH, continues: 'genesis', endsMidLine: false });
  const one = join(dir, 'one.log');
  const only = new HashChain().link('{"event":"x"}\n');
  writeFileSync(one, only);
  t.equal(readChainStart(one).head, (JSON.parse(only) as { hash: string }).hash, 'a single line');
  t.equal(readFileSync(one, 'utf8'), only);
});

t.test(
  'readChainStart continues from a whole last line that lost only its newline, if it links to the line before',
  async (t) => {
    const dir = t.testdir();
    const file = join(dir, 'audit.log');
    const chain = new HashChain();
    // Long lines, so that the unterminated one straddles the 64 KiB chunks read backwards.
    const lines = Array.from({ length: 4 }, (_, i) =>
      chain.link(`{"event":"request","i":${i},"pad":"${'x'.repeat(50_000)}"}\n`),
    );
    writeFileSync(file, lines.join('').slice(0, -1));
    t.same(readChainStart(file), { head: chain.head, continues: 'file-tail', endsMidLine: true });
    const one = join(dir, 'one.log');
    const only = new HashChain('a'.repeat(64)).link('{"event":"x"}\n');
    writeFileSync(one, only.slice(0, -1));
    t.same(
      readChainStart(one),
      { head: (JSON.parse(only) as { hash: string }).hash, continues: 'file-tail', endsMidLine: true },
      'a single line (the first of a rotated file links to the file before)',
    );
    // A whole line that does not link to the one before was not written after it by this chain.
    const other = new HashChain('b'.repeat(64)).link('{"event":"forged"}\n');
    writeFileSync(file, lines.slice(0, 3).join('') + other.slice(0, -1));
    const before = (JSON.parse(lines[2]!) as { hash: string }).hash;
    t.same(readChainStart(file), { head: before, continues: 'file-tail', endsMidLine: true });
  },
);
