// The page's code parser: the same rules as src/signal/code.rs (what people
// type is normalized, then it must be a nameplate and three list words) and
// the shared word list itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { editDistance, looksLikeCode, makeCode, nearestWords, parseCode, splitWords } from '../code.js';

const WORDS = splitWords(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'words.txt'), 'utf8'));
const SHAPE = 'A code is a number and 3 words, like 7-acid-zinc-plaza.';
const NAMEPLATE = 'The code must start with a number from 1 to 9999, like the 7 in 7-acid-zinc-plaza.';

test('the word list is 1296 unique, sorted, lowercase a-z words with yoyo and zinc', () => {
  assert.equal(WORDS.length, 1296);
  assert.equal(new Set(WORDS).size, 1296);
  assert.ok(WORDS.every((w) => /^[a-z]{3,5}$/.test(w)));
  assert.deepEqual([...WORDS].sort(), WORDS);
  assert.ok(WORDS.includes('yoyo') && WORDS.includes('zinc') && !WORDS.includes('yo-yo'));
});

test('parses what people type into the canonical form', () => {
  for (const text of [
    '7-acid-zinc-plaza', '  7-Acid-ZINC-plaza\n', '7 acid zinc plaza', '7--acid - zinc-plaza', '\t7  ACID\u00a0zinc -- plaza ',
  ]) {
    assert.deepEqual(
      parseCode(text, WORDS),
      { ok: true, nameplate: 7, words: ['acid', 'zinc', 'plaza'], canonical: '7-acid-zinc-plaza' },
      JSON.stringify(text),
    );
  }
  assert.equal(parseCode('9999-yoyo-zinc-acid', WORDS).canonical, '9999-yoyo-zinc-acid');
  assert.equal(parseCode('1-acid-acid-acid', WORDS).nameplate, 1);
});

test('refuses bad nameplates: 0, a leading zero, 10000, not a number', () => {
  for (const text of ['0-acid-zinc-plaza', '07-acid-zinc-plaza', '10000-acid-zinc-plaza', 'x-acid-zinc-plaza', '+7-acid-zinc-plaza', '7.0-acid-zinc-plaza']) {
    assert.deepEqual(parseCode(text, WORDS), { ok: false, error: NAMEPLATE }, text);
  }
});

test('refuses anything but exactly three words', () => {
  for (const text of ['', '   ', '--', '7', '-7-acid', '7-acid-zinc', '7-acid-zinc-plaza-acorn', null, undefined, 7]) {
    assert.deepEqual(parseCode(text, WORDS), { ok: false, error: SHAPE }, String(text));
  }
});

test('an unknown word is reported at once, with the nearest list words', () => {
  const r = parseCode('7-acid-zimc-plaza', WORDS);
  assert.equal(r.ok, false);
  assert.equal(r.word, 'zimc');
  assert.equal(r.suggestions[0], 'zinc');
  assert.ok(r.suggestions.length <= 3);
  assert.match(r.error, /^“zimc” is not one of the code words: did you mean “zinc”/);
  // Reported before the count is checked: the typo is the useful answer.
  assert.equal(parseCode('7-plazza', WORDS).word, 'plazza');
  const none = parseCode('7-acid-qqqqqqq-plaza', WORDS);
  assert.deepEqual(none.suggestions, []);
  assert.equal(none.error, '“qqqqqqq” is not one of the code words, so check the code with the sender.');
  assert.equal(parseCode('7-Acid-ZIMC-plaza', WORDS).word, 'zimc');
});

test('nearest words: Damerau-Levenshtein distance at most 2, closest first, at most 3', () => {
  assert.equal(editDistance('abc', 'acb'), 1);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('plaza', 'plaza'), 0);
  // A swap of two letters is one edit.
  assert.equal(nearestWords('plzaa', WORDS)[0], 'plaza');
  for (const w of ['zimc', 'plzaa', 'acdi', 'yoyoo', 'ab', 'xxxxx']) {
    const s = nearestWords(w, WORDS);
    assert.ok(s.length <= 3, w);
    const d = s.map((x) => editDistance(w, x));
    assert.ok(d.every((x) => x <= 2), w);
    assert.deepEqual([...d].sort((a, b) => a - b), d, `${w}: closest first`);
  }
  assert.deepEqual(nearestWords('qqqqqqq', WORDS), []);
});

test('makeCode produces codes that parse back', () => {
  for (const n of [1, 42, 9999]) {
    const code = makeCode(n, WORDS);
    const r = parseCode(code, WORDS);
    assert.equal(r.ok, true, code);
    assert.equal(r.canonical, code);
    assert.equal(r.nameplate, n);
  }
  let i = 0;
  assert.equal(makeCode(7, WORDS, () => [0, 1295, 5][i++]), `7-${WORDS[0]}-${WORDS[1295]}-${WORDS[5]}`);
  for (const bad of [0, 10000, 1.5, '7']) assert.throws(() => makeCode(bad, WORDS), /nameplate/);
  assert.throws(() => makeCode(7, WORDS, () => 1296), /index/);
});

test('looksLikeCode tells codes from tickets and links', () => {
  assert.ok(looksLikeCode('7-acid'));
  assert.ok(looksLikeCode(' 12 acid'));
  assert.ok(!looksLikeCode('ferryabc'));
  assert.ok(!looksLikeCode('http://x/#ferry'));
});
