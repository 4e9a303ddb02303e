/**
 * Checks audit log files against the hash chain (see hash-chain.ts) and names the first broken
 * link: which file and line, and what most likely happened to it (edited, deleted, inserted,
 * reordered). Several files are checked as one chain in the order given (logrotate's
 * audit.log.2, audit.log.1, audit.log), so the links between rotated files are checked too.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { GENESIS_HASH, checkLine } from './hash-chain.js';

export type BreakKind = 'edited' | 'unchained' | 'deleted' | 'inserted' | 'reordered';

export interface LinePosition {
  readonly file: string;
  /** 1-based line number in that file. */
  readonly line: number;
}

export type ChainReport =
  | {
      readonly ok: true;
      readonly lines: number;
      /** `prev` of the very first line: GENESIS_HASH, or the hash of a line in an earlier file not given. */
      readonly anchor: string;
      /** The hash of the last line: record it elsewhere to detect a later truncation of the tail. */
      readonly head: string;
      /** Lines where the gate started a new chain (prev = genesis) after the first line. */
      readonly restarts: readonly LinePosition[];
      /**
       * Lines cut short (a crash mid-write) followed by the restarted gate's audit-log-opened
       * line, which continues from the last whole line: no whole line is missing around them.
       */
      readonly torn: readonly LinePosition[];
    }
  | {
      readonly ok: false;
      readonly at: LinePosition;
      readonly kind: BreakKind;
      /** One sentence for the auditor, naming lines by number. */
      readonly why: string;
      /** Lines checked and found sound before the break. */
      readonly goodLines: number;
    };

interface ReadLine {
  readonly bytes: Buffer;
  readonly position: LinePosition;
}

/** Yields each line of the files in order, without its newline (a last line without one too). */
async function* linesOf(files: readonly string[]): AsyncGenerator<ReadLine> {
  for (const file of files) {
    let line = 0;
    let carry: Buffer = Buffer.alloc(0);
    for await (const chunk of await contentOf(file)) {
      let start = 0;
      let data = chunk;
      if (carry.length > 0) {
        data = Buffer.concat([carry, chunk]);
        carry = Buffer.alloc(0);
      }
      for (let nl = data.indexOf(10); nl !== -1; nl = data.indexOf(10, start)) {
        yield { bytes: data.subarray(start, nl), position: { file, line: ++line } };
        start = nl + 1;
      }
      if (start < data.length) carry = Buffer.from(data.subarray(start));
    }
    if (carry.length > 0) yield { bytes: carry, position: { file, line: ++line } };
  }
}

/**
 * A file's bytes; gunzipped when it starts with gzip's magic bytes, since logrotate's `compress`
 * leaves every older file as FILE.N.gz.
 */
async function contentOf(file: string): Promise<AsyncIterable<Buffer>> {
  const handle = await open(file, 'r');
  let gzipped: boolean;
  try {
    const { bytesRead, buffer } = await handle.read(Buffer.alloc(2), 0, 2, 0);
    gzipped = bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b;
  } finally {
    await handle.close();
  }
  const stream = createReadStream(file);
  if (!gzipped) return stream;
  const gunzip = createGunzip();
  // A corrupt file ends the read with zlib's error, which the caller reports with the file named.
  stream.on('error', (err) => gunzip.destroy(err));
  gunzip.on('error', (err: NodeJS.ErrnoException) => Object.assign(err, { path: file }));
  return stream.pipe(gunzip);
}

/** Verifies the chain over the files; rejects (with the OS error) when a file cannot be read. */
export async function verifyChain(files: readonly string[]): Promise<ChainReport> {
  let count = 0;
  let previous: { hash: string; position: LinePosition } | undefined;
  let anchor = GENESIS_HASH;
  const restarts: LinePosition[] = [];
  const torn: LinePosition[] = [];
  // A line without a chain tail is judged by the line after it: the restarted gate's
  // audit-log-opened line, continuing the line before it, makes it a crash's torn line and
  // checking goes on (so nothing after it escapes the check); anything else breaks the chain.
  let unchained: LinePosition | undefined;
  const brokenAt = (position: LinePosition): ChainReport =>
    broken(
      position,
      'unchained',
      `${where(position)} carries no valid prev/hash tail and no restart of the gate follows it: it was cut short (a crash or a full disk) or written by something other than the gate`,
      count,
    );
  for await (const { bytes, position } of linesOf(files)) {
    const check = checkLine(bytes);
    if (check.kind === 'unchained') {
      if (unchained !== undefined) return brokenAt(unchained);
      if (!cutShort(bytes)) {
        return broken(
          position,
          'unchained',
          `${where(position)} is a whole line without a prev/hash tail: it was not written by the gate`,
          count,
        );
      }
      unchained = position;
      continue;
    }
    if (check.kind === 'edited') {
      return broken(
        position,
        'edited',
        `${where(position)} was changed after it was written: its hash does not match its content`,
        count,
      );
    }
    if (unchained !== undefined) {
      if (!restartsAfter(unchained, bytes, check.prev, previous)) return brokenAt(unchained);
      torn.push(unchained);
      unchained = undefined;
    }
    if (previous === undefined) anchor = check.prev;
    else if (check.prev === GENESIS_HASH) restarts.push(position);
    else if (check.prev !== previous.hash)
      return explainBadLink(files, count + 1, position, previous.position, count);
    previous = { hash: check.hash, position };
    count++;
  }
  if (unchained !== undefined) return brokenAt(unchained); // a torn tail: no restart after it
  return { ok: true, lines: count, anchor, head: previous?.hash ?? GENESIS_HASH, restarts, torn };
}

/**
 * Whether an unchained line can be a line a crash cut short: the start of one JSON object, not a
 * whole one. Anyone can append or insert a whole line; only its own restart can follow a torn one.
 */
function cutShort(bytes: Buffer): boolean {
  if (bytes.length === 0 || bytes[0] !== 0x7b) return false;
  try {
    JSON.parse(bytes.toString('utf8'));
    return false;
  } catch {
    return true;
  }
}

/**
 * Whether the chained line after a torn one is what the gate writes when it starts on a file that
 * ends mid-line (destination.ts, hash-chain.ts readChainStart): its audit-log-opened line, which
 * continues the file's last whole line (`file-tail`), or starts a new chain when there was none
 * before the torn line in that file (`genesis`). A line that merely links past the torn one is not
 * enough: whoever inserts a line between two whole lines gets exactly that.
 */
function restartsAfter(
  torn: LinePosition,
  next: Buffer,
  prev: string,
  previous: { readonly hash: string; readonly position: LinePosition } | undefined,
): boolean {
  let line: { event?: unknown; continues?: unknown };
  try {
    line = JSON.parse(next.toString('utf8')) as typeof line;
  } catch {
    return false;
  }
  if (line.event !== 'audit-log-opened') return false;
  if (line.continues === 'genesis') return prev === GENESIS_HASH && torn.line === 1;
  return (
    line.continues === 'file-tail' &&
    previous !== undefined &&
    previous.position.file === torn.file &&
    prev === previous.hash
  );
}

function where(p: LinePosition): string {
  return `line ${p.line} of ${p.file}`;
}

function broken(at: LinePosition, kind: BreakKind, why: string, goodLines: number): ChainReport {
  return { ok: false, at, kind, why, goodLines };
}

/**
 * The chained line at index n (1-based, lines cut short not counted) does not link to line n-1. A second pass over the files
 * finds where its `prev` does appear, and whether the next line links past it, to say what happened.
 */
async function explainBadLink(
  files: readonly string[],
  n: number,
  at: LinePosition,
  before: LinePosition,
  goodLines: number,
): Promise<ChainReport> {
  const firstIndexOfHash = new Map<string, number>();
  const positions: LinePosition[] = [];
  let index = 0;
  let prevAtN = '';
  let hashAtN = '';
  let prevAfterN: string | undefined;
  let hashBeforeN = '';
  for await (const { bytes, position } of linesOf(files)) {
    const check = checkLine(bytes);
    if (check.kind === 'unchained') continue; // torn lines (verifyChain's count skips them too)
    index++;
    positions[index] = position;
    if (index === n - 1) hashBeforeN = check.hash;
    if (index === n) {
      prevAtN = check.prev;
      hashAtN = check.hash;
    }
    if (index === n + 1) prevAfterN = check.prev;
    if (!firstIndexOfHash.has(check.hash)) firstIndexOfHash.set(check.hash, index);
  }
  const copyOf = firstIndexOfHash.get(hashAtN);
  if (copyOf !== undefined && copyOf < n) {
    return broken(at, 'inserted', `${where(at)} is a copy of ${where(positions[copyOf] ?? at)}`, goodLines);
  }
  const follows = firstIndexOfHash.get(prevAtN);
  if (follows !== undefined && follows > n) {
    return broken(
      at,
      'reordered',
      `${where(at)} belongs after ${where(positions[follows] ?? at)}: lines were reordered`,
      goodLines,
    );
  }
  if (prevAfterN !== undefined && prevAfterN === hashBeforeN) {
    return broken(
      at,
      'inserted',
      `${where(at)} was inserted: the line after it continues ${where(before)}`,
      goodLines,
    );
  }
  if (follows !== undefined && follows < n - 1) {
    const from = positions[follows + 1] ?? at;
    return broken(
      at,
      'inserted',
      `${where(from)} up to ${where(before)} were inserted or moved there: ${where(at)} continues ${where(positions[follows] ?? at)}`,
      goodLines,
    );
  }
  return broken(
    at,
    'deleted',
    `${where(at)} does not follow ${where(before)}: the line it follows is missing (deleted, or ${where(before)} was rewritten with a new hash)`,
    goodLines,
  );
}
