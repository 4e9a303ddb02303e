/**
 * The hash chain that makes the audit log tamper-evident. Each line ends with the hash of the line
 * before it and its own hash:
 *
 *     {...pino fields...,"prev":"<64 hex>","hash":"<64 hex>"}\n
 *
 *     hash = hex(SHA-256(the line's bytes without `,"hash":"<64 hex>"`, i.e. ending in `"prev":"…"}`))
 *
 * `prev` is inside what is hashed, so each hash covers the whole chain before it. The first line of
 * a new chain has `prev` = 64 zeros (GENESIS_HASH). A gate restarting on an existing file continues
 * from the hash of its last line; a file reopened after logrotate continues from the hash of the
 * previous file's last line, so the rotated files verify as one chain when read in order.
 * docs/audit-log.md gives the same recipe in Python and shell for auditors.
 */
import crypto, { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export const GENESIS_HASH = '0'.repeat(64);
const PREV_KEY = ',"prev":"';
const HASH_KEY = '","hash":"';
/** `,"prev":"` + 64 hex + `","hash":"` + 64 hex + `"}`: the fixed tail of every chained line. */
export const CHAIN_TAIL_LENGTH = PREV_KEY.length + 64 + HASH_KEY.length + 64 + 2;
const HEX64 = /^[0-9a-f]{64}$/;

/**
 * SHA-256 in hex. crypto.hash() (Node 20.12 and later) makes no Hash object and costs half of
 * createHash() for a line this size; the package supports Node 20.0, hence the fallback.
 */
const sha256Hex: (text: string) => string =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'hex')
    : (text) => createHash('sha256').update(text).digest('hex');

/** Appends `prev` and `hash` to each line, in the order lines are given; keeps the last hash. */
export class HashChain {
  private last: string;

  constructor(head: string = GENESIS_HASH) {
    this.last = head;
  }

  /** The hash of the last line linked (what the next line's `prev` will be). */
  get head(): string {
    return this.last;
  }

  /**
   * `{...}\n` as pino writes it → `{...,"prev":"…","hash":"…"}\n`. Anything that is not one JSON
   * object is wrapped as `{"line":"…"}` first, so every line of the file stays chained.
   */
  link(line: string): string {
    let end = line.length;
    if (end > 0 && line.charCodeAt(end - 1) === 10) end--;
    const object =
      end > 2 && line.charCodeAt(0) === 123 && line.charCodeAt(end - 1) === 125
        ? line.slice(0, end - 1)
        : `{"line":${JSON.stringify(line.slice(0, end))}`;
    const unhashed = object + PREV_KEY + this.last + '"';
    const hash = sha256Hex(unhashed + '}');
    this.last = hash;
    return unhashed + HASH_KEY.slice(1) + hash + '"}\n';
  }
}

/** One line of a chained file, checked on its own (not yet against its neighbours). */
export type LineCheck =
  | { readonly kind: 'ok'; readonly prev: string; readonly hash: string }
  /** The tail is there but the hash does not match the content: the line was changed. */
  | { readonly kind: 'edited'; readonly prev: string; readonly hash: string }
  /** No `prev`/`hash` tail: cut short by a crash or a full disk, or not written by dockgate. */
  | { readonly kind: 'unchained' };

/** Checks one line given without its trailing newline. */
export function checkLine(line: Buffer): LineCheck {
  const n = line.length;
  if (n < CHAIN_TAIL_LENGTH + 1) return { kind: 'unchained' };
  const tail = line.toString('latin1', n - CHAIN_TAIL_LENGTH);
  if (!tail.startsWith(PREV_KEY) || !tail.endsWith('"}')) return { kind: 'unchained' };
  const prev = tail.slice(PREV_KEY.length, PREV_KEY.length + 64);
  const hashKeyAt = PREV_KEY.length + 64;
  if (tail.slice(hashKeyAt, hashKeyAt + HASH_KEY.length) !== HASH_KEY) return { kind: 'unchained' };
  const hash = tail.slice(hashKeyAt + HASH_KEY.length, hashKeyAt + HASH_KEY.length + 64);
  if (!HEX64.test(prev) || !HEX64.test(hash)) return { kind: 'unchained' };
  const unhashedEnd = n - CHAIN_TAIL_LENGTH + hashKeyAt + 1; // through the closing quote of prev
  const computed = createHash('sha256').update(line.subarray(0, unhashedEnd)).update('}').digest('hex');
  return { kind: computed === hash ? 'ok' : 'edited', prev, hash };
}

/** Where a chain picks up when the gate opens a file. */
export interface ChainStart {
  readonly head: string;
  /**
   * `genesis`: new or empty file, or its last line carries no valid hash; `file-tail`: its last
   * line's hash (an unterminated last line's, when that line is whole and links to the one before).
   */
  readonly continues: 'genesis' | 'file-tail';
  /** The file ends in a partial line (a crash mid-write): the writer must start on a new line. */
  readonly endsMidLine: boolean;
}

const TAIL_CHUNK = 64 * 1024;

/** Reads how an existing file's chain ends, looking only at its last line. */
export function readChainStart(file: string): ChainStart {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return { head: GENESIS_HASH, continues: 'genesis', endsMidLine: false };
    const { lastLine, unterminated } = lastLines(fd, size);
    const check = lastLine ? checkLine(lastLine) : undefined;
    const endsMidLine = unterminated !== undefined;
    // A crash that cut only the final newline leaves a whole line: when it checks out and links
    // to the line before, the chain goes on from it (the writer adds the newline). Starting from
    // the line before instead would fork the chain there, and verify would call the file broken.
    const whole = unterminated ? checkLine(unterminated) : undefined;
    if (whole?.kind === 'ok' && (check === undefined || (check.kind === 'ok' && whole.prev === check.hash))) {
      return { head: whole.hash, continues: 'file-tail', endsMidLine };
    }
    return check?.kind === 'ok'
      ? { head: check.hash, continues: 'file-tail', endsMidLine }
      : { head: GENESIS_HASH, continues: 'genesis', endsMidLine };
  } finally {
    closeSync(fd);
  }
}

/**
 * The last newline-terminated line (without its newline), and what follows it when the file does
 * not end in a newline, reading backwards in chunks.
 */
function lastLines(
  fd: number,
  size: number,
): { lastLine: Buffer | undefined; unterminated: Buffer | undefined } {
  let collected = Buffer.alloc(0);
  let position = size;
  let lastNewline = -1;
  const after = (newline: number): Buffer | undefined =>
    collected[collected.length - 1] === 10 ? undefined : collected.subarray(newline + 1);
  while (position > 0) {
    const length = Math.min(TAIL_CHUNK, position);
    position -= length;
    const chunk = Buffer.alloc(length);
    readSync(fd, chunk, 0, length, position);
    collected = Buffer.concat([chunk, collected]);
    if (lastNewline === -1) lastNewline = collected.lastIndexOf(10);
    else lastNewline += length;
    if (lastNewline === -1) continue;
    // (lastIndexOf with a negative offset would count from the end)
    const start = lastNewline === 0 ? -1 : collected.lastIndexOf(10, lastNewline - 1);
    if (start !== -1 || position === 0) {
      return { lastLine: collected.subarray(start + 1, lastNewline), unterminated: after(lastNewline) };
    }
  }
  return { lastLine: undefined, unterminated: collected.length > 0 ? collected : undefined };
}
