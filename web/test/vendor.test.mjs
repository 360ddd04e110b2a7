// The vendored noble files the page imports are the pinned npm packages,
// byte for byte, except the one rewrite documented in web/vendor/README.md
// (bare `@noble/hashes/` imports made relative). Re-create with scripts/vendor-noble.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const web = join(dirname(fileURLToPath(import.meta.url)), '..');
const files = (dir) =>
  readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]));

for (const pkg of ['curves', 'hashes']) {
  const vendored = join(web, 'vendor', `noble-${pkg}`);
  const upstream = join(web, 'node_modules', '@noble', pkg);

  test(`@noble/${pkg} in node_modules is the pinned 2.4.0`, () => {
    assert.equal(JSON.parse(readFileSync(join(upstream, 'package.json'), 'utf8')).version, '2.4.0');
    assert.equal(JSON.parse(readFileSync(join(web, 'package.json'), 'utf8')).devDependencies[`@noble/${pkg}`], '2.4.0');
  });

  test(`vendor/noble-${pkg} matches node_modules after the documented rewrite`, () => {
    const list = files(vendored);
    assert.ok(list.some((f) => f.endsWith('LICENSE')), 'LICENSE is vendored');
    for (const f of list) {
      const rel = relative(vendored, f);
      let want = readFileSync(join(upstream, rel), 'utf8');
      if (pkg === 'curves') {
        const up = rel.includes('/') ? '../..' : '..';
        want = want
          .split('\n')
          .map((l) => (l.startsWith('import ') ? l.replace("from '@noble/hashes/", `from '${up}/noble-hashes/`) : l))
          .join('\n');
      }
      assert.equal(readFileSync(f, 'utf8'), want, rel);
    }
  });

  test(`vendor/noble-${pkg} imports only relative files that are vendored`, () => {
    for (const f of files(vendored).filter((f) => f.endsWith('.js'))) {
      for (const m of readFileSync(f, 'utf8').matchAll(/^(?:import|export)[^;]*?from\s+['"]([^'"]+)['"]/gms)) {
        assert.ok(m[1].startsWith('./') || m[1].startsWith('../'), `${relative(web, f)} imports bare ${m[1]}`);
        assert.ok(statSync(join(dirname(f), m[1])).isFile(), `${relative(web, f)} imports missing ${m[1]}`);
      }
    }
  });
}

test('pake.js and code.js import only vendored files, by relative path', () => {
  for (const name of ['pake.js', 'code.js']) {
    const src = readFileSync(join(web, name), 'utf8');
    for (const m of src.matchAll(/^(?:import|export)[^;]*?from\s+['"]([^'"]+)['"]/gms)) {
      assert.ok(m[1].startsWith('./vendor/noble-'), `${name} imports ${m[1]}`);
      assert.ok(statSync(join(web, m[1])).isFile(), `${name} imports missing ${m[1]}`);
    }
  }
});
