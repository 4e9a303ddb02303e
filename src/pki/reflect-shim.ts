/**
 * The smallest Reflect metadata API that @peculiar/x509 2.x needs to load.
 *
 * @peculiar/x509 registers its algorithms with tsyringe, which refuses to load unless
 * `Reflect.getMetadata` exists (it asks for "design:paramtypes", which x509's build never emits, so
 * every lookup here answers undefined). This file stands in for the `reflect-metadata` package so
 * that dockgate needs no dependency beyond the one the issue chose; it installs nothing when a real
 * polyfill is already present. Import it only through ./x509.ts, before @peculiar/x509.
 */
type MetadataKey = unknown;
type PropertyKey = string | symbol | undefined;
type ReflectWithMetadata = typeof Reflect & {
  getMetadata?: unknown;
  getOwnMetadata?: unknown;
  defineMetadata?: unknown;
  hasMetadata?: unknown;
  hasOwnMetadata?: unknown;
  metadata?: unknown;
};

const store = new WeakMap<object, Map<PropertyKey, Map<MetadataKey, unknown>>>();

function ownMap(
  target: object,
  property: PropertyKey,
  create: boolean,
): Map<MetadataKey, unknown> | undefined {
  let byProperty = store.get(target);
  if (!byProperty) {
    if (!create) return undefined;
    byProperty = new Map();
    store.set(target, byProperty);
  }
  let map = byProperty.get(property);
  if (!map && create) {
    map = new Map();
    byProperty.set(property, map);
  }
  return map;
}

function getOwnMetadata(key: MetadataKey, target: object, property?: PropertyKey): unknown {
  return ownMap(target, property, false)?.get(key);
}

function hasOwnMetadata(key: MetadataKey, target: object, property?: PropertyKey): boolean {
  return ownMap(target, property, false)?.has(key) ?? false;
}

function getMetadata(key: MetadataKey, target: object, property?: PropertyKey): unknown {
  for (let o: object | null = target; o !== null; o = Object.getPrototypeOf(o) as object | null) {
    if (hasOwnMetadata(key, o, property)) return getOwnMetadata(key, o, property);
  }
  return undefined;
}

function hasMetadata(key: MetadataKey, target: object, property?: PropertyKey): boolean {
  for (let o: object | null = target; o !== null; o = Object.getPrototypeOf(o) as object | null) {
    if (hasOwnMetadata(key, o, property)) return true;
  }
  return false;
}

function defineMetadata(key: MetadataKey, value: unknown, target: object, property?: PropertyKey): void {
  ownMap(target, property, true)?.set(key, value);
}

function metadata(key: MetadataKey, value: unknown) {
  return (target: object, property?: PropertyKey): void => defineMetadata(key, value, target, property);
}

const reflect = Reflect as ReflectWithMetadata;
if (typeof reflect.getMetadata !== 'function') {
  Object.assign(reflect, {
    getMetadata,
    getOwnMetadata,
    hasMetadata,
    hasOwnMetadata,
    defineMetadata,
    metadata,
  });
}
