/**
 * What a Go struct holds after encoding/json.Unmarshal of a parsed body (go-json.ts), for the
 * fields the policy inspects. Go's rules, each a way around a naive JSON check:
 *
 * - a key matches a field by exact name first, else case-insensitively with Unicode simple
 *   folding: "privileged", "PRIVILEGED" and "Privile\u0067ed" all set Privileged, and so does
 *   "\u212Aey" for "Key" (KELVIN SIGN folds to K) and "\u017F" for S (LONG S);
 * - a later duplicate key wins for scalars, but a JSON null leaves a bool, string or number as it
 *   was (`"Privileged": true, "Privileged": null` is still privileged);
 * - a later object for the same struct or map field is merged into the earlier one, not swapped in;
 * - an array decodes into the existing slice element by element, reusing (merging into) elements
 *   that are already there, and may even reuse elements beyond the current length that an earlier,
 *   longer array left in the backing array. That last case depends on slice capacity, which is not
 *   knowable here, so it is refused as ambiguous rather than guessed;
 * - unknown keys are ignored; a value of the wrong JSON type fails the whole request in dockerd,
 *   so it is refused here too.
 */
import { GoJsonError, isGoNumber, isGoObject, type GoJsonValue } from './go-json.js';

export type GoType =
  | { readonly kind: 'bool' }
  | { readonly kind: 'string' }
  | { readonly kind: 'number' }
  | { readonly kind: 'struct'; readonly fields: Readonly<Record<string, GoType>>; readonly pointer?: boolean }
  | { readonly kind: 'slice'; readonly elem: GoType }
  | { readonly kind: 'map'; readonly value: GoType }
  /** strslice.StrSlice: a string or an array of strings, replaced as a whole (custom UnmarshalJSON). */
  | { readonly kind: 'strslice' }
  /** interface{} / json.RawMessage: kept as parsed. */
  | { readonly kind: 'raw' };

/** A decoded struct: field name (as in the Go json tag) → decoded value. */
export type GoStruct = { [field: string]: GoDecoded };
export interface GoSlice {
  readonly items: GoDecoded[];
  /** Backing-array length an earlier, longer array may have left behind. */
  readonly stale: number;
}
export type GoDecoded =
  boolean | string | null | undefined | GoStruct | GoSlice | Map<string, GoDecoded> | string[] | GoJsonValue;

export const T = {
  bool: { kind: 'bool' } as const,
  string: { kind: 'string' } as const,
  number: { kind: 'number' } as const,
  strslice: { kind: 'strslice' } as const,
  raw: { kind: 'raw' } as const,
  slice: (elem: GoType): GoType => ({ kind: 'slice', elem }),
  map: (value: GoType): GoType => ({ kind: 'map', value }),
  struct: (fields: Record<string, GoType>): GoType => ({ kind: 'struct', fields }),
  ptr: (fields: Record<string, GoType>): GoType => ({ kind: 'struct', fields, pointer: true }),
};

/** Go's case folding of a JSON key against ASCII field names: ASCII letters, plus U+212A → K, U+017F → S. */
export function foldKey(key: string): string {
  let out = '';
  for (const ch of key) {
    if (ch === '\u212a') out += 'K';
    else if (ch === '\u017f') out += 'S';
    else if (ch >= 'a' && ch <= 'z') out += ch.toUpperCase();
    else out += ch;
  }
  return out;
}

const foldedIndex = new WeakMap<object, Map<string, string>>();

/** The struct field a JSON key sets, or undefined when Go ignores the key. */
export function fieldFor(fields: Readonly<Record<string, GoType>>, key: string): string | undefined {
  if (Object.hasOwn(fields, key)) return key;
  let index = foldedIndex.get(fields);
  if (!index) {
    index = new Map();
    // First field in declaration order wins a fold collision, as in Go's byFoldedName.
    for (const name of Object.keys(fields)) if (!index.has(foldKey(name))) index.set(foldKey(name), name);
    foldedIndex.set(fields, index);
  }
  return index.get(foldKey(key));
}

/** The zero value of a Go type, as held by a field never set. */
export function zeroOf(t: GoType): GoDecoded {
  switch (t.kind) {
    case 'bool':
      return false;
    case 'string':
      return '';
    case 'number':
      return '0';
    case 'struct':
      return t.pointer ? null : {};
    default:
      return null;
  }
}

/**
 * Decodes a top-level value into a fresh value of type t. A struct body must be a JSON object: Go
 * would leave the struct empty for `null` and fail for anything else, which dockerd then rejects.
 */
export function decodeGoJson(t: GoType, value: GoJsonValue): GoDecoded {
  if (t.kind === 'struct' && !isGoObject(value)) throw new GoJsonError('the body is not a JSON object', 0);
  if (t.kind === 'slice' && !Array.isArray(value)) throw new GoJsonError('the body is not a JSON array', 0);
  const fresh = t.kind === 'struct' ? {} : zeroOf(t);
  return decodeValue(t, fresh, value, '');
}

function typeError(path: string, t: GoType): never {
  throw new GoJsonError(
    `${path || 'the body'} is not a ${t.kind === 'strslice' ? 'string list' : t.kind}`,
    0,
  );
}

function decodeValue(t: GoType, cur: GoDecoded, v: GoJsonValue, path: string): GoDecoded {
  if (v === null) {
    if (t.kind === 'bool' || t.kind === 'string' || t.kind === 'number') return cur;
    if (t.kind === 'struct' && !t.pointer) return cur;
    return null;
  }
  switch (t.kind) {
    case 'bool':
      return typeof v === 'boolean' ? v : typeError(path, t);
    case 'string':
      return typeof v === 'string' ? v : typeError(path, t);
    case 'number':
      return isGoNumber(v) ? v.text : typeError(path, t);
    case 'raw':
      return v;
    case 'strslice':
      if (typeof v === 'string') return [v];
      if (!Array.isArray(v)) return typeError(path, t);
      return v.map((item) => (item === null ? '' : typeof item === 'string' ? item : typeError(path, t)));
    case 'struct': {
      if (!isGoObject(v)) return typeError(path, t);
      const target: GoStruct = cur !== null && typeof cur === 'object' ? (cur as GoStruct) : {};
      for (const [key, item] of v.entries) {
        const field = fieldFor(t.fields, key);
        if (field === undefined) continue;
        const ft = t.fields[field]!;
        const before = Object.hasOwn(target, field) ? target[field] : zeroOf(ft);
        target[field] = decodeValue(ft, before, item, path ? `${path}.${field}` : field);
      }
      return target;
    }
    case 'map': {
      if (!isGoObject(v)) return typeError(path, t);
      const target = cur instanceof Map ? cur : new Map<string, GoDecoded>();
      // Each map element is decoded into a fresh zero value, then stored: no merge per key.
      for (const [key, item] of v.entries)
        target.set(key, decodeValue(t.value, zeroOf(t.value), item, `${path}[${JSON.stringify(key)}]`));
      return target;
    }
    case 'slice': {
      if (!Array.isArray(v)) return typeError(path, t);
      const old = isSlice(cur) ? cur : undefined;
      if (v.length === 0) return { items: [], stale: 0 };
      const items = old ? old.items : [];
      const oldLen = items.length;
      const stale = old ? Math.max(old.stale, oldLen) : 0;
      const mergeKinds = t.elem.kind === 'struct' || t.elem.kind === 'map' || t.elem.kind === 'slice';
      v.forEach((item, i) => {
        const at = `${path}[${i}]`;
        if (i < items.length) items[i] = decodeValue(t.elem, items[i], item, at);
        else {
          if (i < stale && (item === null || mergeKinds))
            throw new GoJsonError(
              `${at} would reuse data a longer earlier ${path} left behind (repeated key); refused as ambiguous`,
              0,
            );
          items.push(decodeValue(t.elem, zeroOf(t.elem), item, at));
        }
      });
      items.length = v.length;
      return { items, stale: Math.max(stale, oldLen) };
    }
  }
}

export function isSlice(v: GoDecoded): v is GoSlice {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map) && 'stale' in v;
}

// Readers for decoded values, tolerant of absent (zero) fields.

export function structField(s: GoDecoded, field: string): GoDecoded {
  if (s === null || typeof s !== 'object' || Array.isArray(s) || s instanceof Map || isSlice(s))
    return undefined;
  return (s as GoStruct)[field];
}

export function asString(v: GoDecoded): string {
  return typeof v === 'string' ? v : '';
}

export function asBool(v: GoDecoded): boolean {
  return v === true;
}

export function asList(v: GoDecoded): GoDecoded[] {
  if (isSlice(v)) return v.items;
  if (Array.isArray(v)) return v as GoDecoded[];
  return [];
}

export function asStrings(v: GoDecoded): string[] {
  return asList(v).map(asString);
}

export function asMap(v: GoDecoded): Map<string, GoDecoded> {
  return v instanceof Map ? v : new Map();
}
