/**
 * Reading a policy file's YAML nodes with their line numbers: each value is checked where it is
 * read, and every problem is collected (not thrown) so lint can report them all at once.
 */
import { isMap, isScalar, isSeq, type LineCounter, type Node, type Pair } from 'yaml';
import type { PolicyRule, Role } from './policy-model.js';

export interface PolicyProblem {
  readonly line: number | undefined;
  /** Dotted field path, e.g. `roles.ci.constraints.bindPaths[0]`. */
  readonly field: string;
  readonly message: string;
}

export function formatProblem(file: string, p: PolicyProblem): string {
  return `${file}${p.line ? `, line ${p.line}` : ''}${p.field ? `, ${p.field}` : ''}: ${p.message}`;
}

export type AnyNode = Node | null | undefined;

export class Reader {
  readonly problems: PolicyProblem[] = [];
  result: { roles: Map<string, Role>; rules: PolicyRule[] } | undefined;
  constructor(private readonly lc: LineCounter) {}

  line(node: AnyNode): number | undefined {
    const start = node?.range?.[0];
    return start === undefined ? undefined : this.lc.linePos(start).line;
  }

  problem(node: AnyNode, field: string, message: string): void {
    this.problems.push({ line: this.line(node), field, message });
  }

  /** The pairs of a mapping, checking keys against `known`. */
  entries(node: AnyNode, field: string, known?: readonly string[]): Array<[string, Node | null, Pair]> {
    if (!isMap(node)) {
      this.problem(node, field, 'must be a mapping');
      return [];
    }
    const out: Array<[string, Node | null, Pair]> = [];
    for (const pair of node.items as Pair[]) {
      const keyNode = pair.key as AnyNode;
      const key = isScalar(keyNode) ? String(keyNode.value) : undefined;
      if (key === undefined) {
        this.problem(keyNode, field, 'keys must be plain strings');
        continue;
      }
      const at = field ? `${field}.${key}` : key;
      if (known && !known.includes(key)) {
        this.problem(keyNode, at, `unknown key '${key}'; expected one of: ${known.join(', ')}`);
        continue;
      }
      out.push([key, (pair.value as Node | null) ?? null, pair]);
    }
    return out;
  }

  string(node: AnyNode, field: string): string | undefined {
    if (isScalar(node) && typeof node.value === 'string') return node.value;
    // As written: YAML reads `cn: 1.10` as the number 1.1, and a client named 1.10 would then
    // never match (or `007` would match a client named 7).
    if (isScalar(node) && typeof node.value === 'number') return node.source ?? String(node.value);
    this.problem(node, field, 'must be a string');
    return undefined;
  }

  bool(node: AnyNode, field: string): boolean | undefined {
    if (isScalar(node) && typeof node.value === 'boolean') return node.value;
    this.problem(node, field, 'must be true or false');
    return undefined;
  }

  integer(node: AnyNode, field: string, min: number, max: number): number | undefined {
    if (
      isScalar(node) &&
      Number.isInteger(node.value) &&
      (node.value as number) >= min &&
      (node.value as number) <= max
    )
      return node.value as number;
    this.problem(node, field, `must be a whole number from ${min} to ${max}`);
    return undefined;
  }

  /** A string or a list of strings, each passed through `check` (which may report and return undefined). */
  strings(
    node: AnyNode,
    field: string,
    check: (s: string, n: AnyNode, f: string) => string | undefined = (s) => s,
    allowEmpty = false,
  ): string[] {
    const items: Array<[AnyNode, string]> = isSeq(node)
      ? (node.items as AnyNode[]).map((n, i) => [n, `${field}[${i}]`])
      : [[node, field]];
    const out: string[] = [];
    for (const [n, f] of items) {
      const s = this.string(n, f);
      if (s === undefined) continue;
      if (s === '' && !allowEmpty) {
        this.problem(n, f, 'must not be empty');
        continue;
      }
      const checked = check(s, n, f);
      if (checked !== undefined) out.push(checked);
    }
    return out;
  }
}
