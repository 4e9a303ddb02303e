import t from 'tap';
import fc from 'fast-check';
import { GoJsonError, parseGoJson, type GoJsonValue } from '../../src/policy/go-json.js';
import {
  asBool,
  asStrings,
  decodeGoJson,
  fieldFor,
  foldKey,
  structField,
  T,
  type GoType,
} from '../../src/policy/go-decode.js';
import { CONTAINER_CREATE } from '../../src/policy/engine-bodies.js';

const parse = (s: string | Buffer) => parseGoJson(Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8'));
const decode = (type: GoType, s: string | Buffer) => decodeGoJson(type, parse(s));
const hostConfig = (s: string) => structField(decode(CONTAINER_CREATE, s), 'HostConfig');

t.test('syntax Go refuses is refused', async (t) => {
  for (const bad of [
    '',
    '   ',
    '{',
    '{"a":1,}',
    '[1,]',
    "{'a':1}",
    '{"a":01}',
    '{"a":1.}',
    '{"a":.5}',
    '{"a":+1}',
    '{"a":NaN}',
    '{"a":"\\x41"}',
    '{"a":"\\u12"}',
    '{"a":"tab\there"}',
    '{"a":1} {"b":2}',
    '{"a":1}}',
    '\ufeff{"a":1}',
    '{"a":1} // comment',
    '{"a":tru}',
  ])
    t.throws(() => parse(bad), GoJsonError, JSON.stringify(bad));
  t.throws(() => parse('['.repeat(1100) + ']'.repeat(1100)), GoJsonError, 'nesting is bounded');
  t.same(parse(' {"a" : [1, -2.5e3, true, null, "x"]}\r\n'), {
    kind: 'object',
    entries: [['a', [{ kind: 'number', text: '1' }, { kind: 'number', text: '-2.5e3' }, true, null, 'x']]],
  });
});

t.test('strings decode as Go unquotes them', async (t) => {
  const str = (json: string | Buffer) => (parse(json) as GoJsonValue[])[0];
  t.equal(str('["Privil\\u0065ged"]'), 'Privileged');
  t.equal(str('["\\ud83d\\ude00"]'), '\u{1F600}', 'a surrogate pair is one rune');
  t.equal(str('["\\ud83d"]'), '\ufffd', 'a lone high surrogate is U+FFFD');
  t.equal(str('["\\ude00x"]'), '\ufffdx', 'a lone low surrogate is U+FFFD');
  t.equal(str('["\\ud83d\\u0041"]'), '\ufffdA', 'a high surrogate before a non-surrogate');
  t.equal(str('["\\/\\b\\f\\n\\r\\t\\"\\\\"]'), '/\b\f\n\r\t"\\');
  t.equal(
    str(Buffer.from([0x5b, 0x22, 0xe2, 0x82, 0x41, 0x22, 0x5d])),
    '\ufffd\ufffdA',
    'each invalid byte is one U+FFFD (WHATWG would give one)',
  );
  t.equal(
    str(Buffer.from([0x5b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x5d])),
    '\ufffd\ufffd\ufffd',
    'UTF-8-encoded surrogates are invalid',
  );
  t.equal(
    str(Buffer.from([0x5b, 0x22, 0xc0, 0xaf, 0x22, 0x5d])),
    '\ufffd\ufffd',
    'overlong forms are invalid',
  );
  t.equal(str(Buffer.from('["é€😀"]', 'utf8')), 'é€😀');
});

t.test('field names match as in Go: exact first, then case-insensitive with K and S folding', async (t) => {
  const fields = { Privileged: T.bool, Key: T.bool, SecurityOpt: T.bool };
  t.equal(fieldFor(fields, 'Privileged'), 'Privileged');
  t.equal(fieldFor(fields, 'privileged'), 'Privileged');
  t.equal(fieldFor(fields, 'PRIVILEGED'), 'Privileged');
  t.equal(fieldFor(fields, '\u212aey'), 'Key', 'KELVIN SIGN folds to K');
  t.equal(fieldFor(fields, '\u017fecurityOpt'), 'SecurityOpt', 'LONG S folds to S');
  t.equal(fieldFor(fields, 'Priv\u0130leged'), undefined, 'dotted capital I is not i');
  t.equal(fieldFor(fields, 'Privileged '), undefined);
  t.equal(foldKey('aBc\u212a\u017f'), 'ABCKS');
});

t.test('what a create body sets, as dockerd decodes it', async (t) => {
  t.ok(asBool(structField(hostConfig('{"HostConfig":{"privileged":true}}'), 'Privileged')), 'lower-case key');
  t.ok(asBool(structField(hostConfig('{"hostconfig":{"PRIVILEGED":true}}'), 'Privileged')), 'upper-case key');
  t.ok(
    asBool(structField(hostConfig('{"HostConfig":{"Privil\\u0065ged":true}}'), 'Privileged')),
    'escaped key',
  );
  t.ok(
    asBool(structField(hostConfig('{"HostConfig":{"Privileged":false,"Privileged":true}}'), 'Privileged')),
    'a later duplicate wins',
  );
  t.ok(
    asBool(structField(hostConfig('{"HostConfig":{"Privileged":true,"Privileged":null}}'), 'Privileged')),
    'null does not reset a bool',
  );
  t.ok(
    asBool(
      structField(hostConfig('{"HostConfig":{"Privileged":true},"HostConfig":{"Memory":1}}'), 'Privileged'),
    ),
    'a repeated struct is merged, not replaced',
  );
  t.equal(hostConfig('{"HostConfig":{"Privileged":true},"HostConfig":null}'), null, 'null resets a pointer');
  t.same(
    asStrings(structField(hostConfig('{"HostConfig":{"CapAdd":"SYS_ADMIN"}}'), 'CapAdd')),
    ['SYS_ADMIN'],
    'StrSlice takes a string',
  );
  t.same(
    asStrings(
      structField(hostConfig('{"HostConfig":{"Binds":["/a:/a","/b:/b"],"Binds":["/c:/c"]}}'), 'Binds'),
    ),
    ['/c:/c'],
    'a repeated slice of strings is replaced',
  );
  t.same(
    asStrings(structField(hostConfig('{"HostConfig":{"Binds":["/:/host"],"Binds":[null]}}'), 'Binds')),
    ['/:/host'],
    'null into a reused string element keeps the old element',
  );
  const mounts = structField(
    hostConfig('{"HostConfig":{"Mounts":[{"Type":"bind","Source":"/"}],"Mounts":[{"Target":"/x"}]}}'),
    'Mounts',
  );
  t.match(
    mounts,
    { items: [{ Type: 'bind', Source: '/', Target: '/x' }] },
    'slice elements are reused and merged',
  );
  t.throws(
    () =>
      decode(
        CONTAINER_CREATE,
        '{"HostConfig":{"Mounts":[{"Type":"volume"},{"Type":"bind","Source":"/"}],"Mounts":[{}],"Mounts":[{},{"Target":"/x"}]}}',
      ),
    /ambiguous/,
    'an element a longer earlier array may have left behind is refused',
  );
  t.same(
    asStrings(
      structField(
        hostConfig('{"HostConfig":{"Binds":["/a:/a"],"Binds":[],"Binds":[null,"/b:/b"]}}'),
        'Binds',
      ),
    ),
    ['', '/b:/b'],
    'an empty array starts a fresh slice',
  );
  const labels = structField(decode(CONTAINER_CREATE, '{"Labels":{"a":"1"},"Labels":{"b":"2"}}'), 'Labels');
  t.same(Object.fromEntries(labels as Map<string, string>), { a: '1', b: '2' }, 'repeated maps merge');
  t.ok(
    asBool(structField(decode(CONTAINER_CREATE, '{"Image":"x","Privileged":true}'), 'Privileged')),
    'top-level HostConfig fields (engines ≤ 24)',
  );
  t.throws(
    () => decode(CONTAINER_CREATE, '{"HostConfig":{"Privileged":"true"}}'),
    GoJsonError,
    'wrong JSON type fails like dockerd',
  );
  t.throws(() => decode(CONTAINER_CREATE, '{"HostConfig":[]}'), GoJsonError);
  t.throws(() => decode(CONTAINER_CREATE, '[]'), /not a JSON object/);
  t.throws(() => decode(CONTAINER_CREATE, 'null'), /not a JSON object/);
  t.same(
    decode(CONTAINER_CREATE, '{"Unknown":{"deep":[1,2]},"image":"bb"}'),
    { Image: 'bb' },
    'unknown keys are ignored',
  );
});

t.test(
  'property: the parser agrees with JSON.parse on JSON.stringify output, and never crashes on junk',
  async () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        const text = JSON.stringify(v);
        const back = toPlain(parse(text));
        return JSON.stringify(back) === JSON.stringify(JSON.parse(text));
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          parse(Buffer.from(bytes));
        } catch (err) {
          return err instanceof GoJsonError;
        }
        return true;
      }),
      { numRuns: 3000 },
    );
  },
);

function toPlain(v: GoJsonValue): unknown {
  if (Array.isArray(v)) return v.map(toPlain);
  if (v && typeof v === 'object')
    return v.kind === 'number'
      ? Number(v.text)
      : Object.fromEntries(v.entries.map(([k, x]) => [k, toPlain(x)]));
  return v;
}
