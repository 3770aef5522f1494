import { loadAllYaml, loadYaml } from '@kubernetes/client-node';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { commented, toYaml, type YamlMap, type YamlValue } from '../../src/manifest/yaml.js';

// Strings that trip YAML writers: booleans of YAML 1.1 (kubectl's reader) and 1.2, numbers,
// timestamps, indicators, comments, flow characters, leading/trailing spaces, several lines.
const TRICKY = [
  '', ' ', 'true', 'False', 'yes', 'No', 'on', 'OFF', 'y', 'n', 'null', 'Null', '~', '0', '-1', '+1', '1e3', '.5', '0x1F', '0o17', '1_000', '.inf', '-.Inf', '.NaN',
  '12:30', '190:20:30', '2001-12-14', ':2112', '127.0.0.1:2112', '[::1]:2112', 'a: b', 'a #b', '#x', '- x', '? x', '@x', '`x', '!x', '&x', '*x', '|x', '>x', '%x', "'x'", '"x"',
  '{a}', '[a]', 'a,b', 'a=b', '=', '<<', 'x:', 'https://127.0.0.1:6443', 'plndr-cp-lock', 'node-role.kubernetes.io/control-plane', 'line1\nline2', 'line1\nline2\n',
  'tail \nx', ' lead\nx', 'a\n\nb\n', 'two\n\n', 'tab\tx', 'é ü', '\u0000', '\\', 'a\r\nb', 'nel\u0085x', 'ls\u2028x\ny', 'bom\ufeff',
];

const str = fc.oneof(fc.constantFrom(...TRICKY), fc.string(), fc.string({ unit: 'grapheme' }), fc.stringMatching(/^[a-z0-9:._\/ #\n-]{0,12}$/));

const value: fc.Arbitrary<YamlValue> = fc.letrec<{ v: YamlValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    str,
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Object.is(d, -0)),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(str, tie('v'), { maxKeys: 4 }),
  ),
})).v;

describe('YAML writer', () => {
  it('reads back as the same data, whatever the strings hold', () => {
    fc.assert(
      fc.property(fc.dictionary(str, value, { maxKeys: 5 }), (doc) => {
        const text = toYaml([{ body: doc }]);
        expect(loadYaml(text) ?? {}).toEqual(JSON.parse(JSON.stringify(doc)));
        // Nothing that a YAML 1.1 reader takes for a line break, outside escapes.
        expect(text).not.toMatch(/[\u0085\u2028\u2029]/);
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps several documents and comments apart from the data', () => {
    const a: YamlMap = { kind: 'A', list: [commented(['first', ''], { x: 1, w: 'z' }), 'plain'], m: commented('c', { k: 'v' }) };
    const text = toYaml([{ comment: ['head'], body: a }, { body: { kind: 'B', empty: [], none: {} } }]);
    expect(text).toBe(
      [
        '# head',
        'kind: A',
        'list:',
        '  # first',
        '  #',
        '  - x: 1',
        '    w: z',
        '  - plain',
        '# c',
        'm:',
        '  k: v',
        '---',
        'kind: B',
        'empty: []',
        'none: {}',
        '',
      ].join('\n'),
    );
    expect(loadAllYaml(text)).toEqual([
      { kind: 'A', list: [{ x: 1, w: 'z' }, 'plain'], m: { k: 'v' } },
      { kind: 'B', empty: [], none: {} },
    ]);
  });

  it('writes shell scripts as literal blocks', () => {
    const text = toYaml([{ body: { args: ['set -eu\necho "$x" > /f\n'] } }]);
    expect(text).toBe('args:\n  - |\n    set -eu\n    echo "$x" > /f\n');
  });

  it('refuses numbers YAML cannot hold', () => {
    expect(() => toYaml([{ body: { x: Number.NaN } }])).toThrow(/NaN/);
  });
});
