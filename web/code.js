// Short codes people read aloud: `7-acid-zinc-plaza`, a nameplate (the room
// on the rendezvous) and three words of web/words.txt, which the CLI embeds
// too. Same rules and messages as src/signal/code.rs. The functions take the
// word list as an argument so node tests can pass it without fetch.

export const CODE_WORDS = 3;
export const MAX_NAMEPLATE = 9999;
const SUGGEST_DISTANCE = 2;
const MAX_SUGGESTIONS = 3;
const EXAMPLE = '7-acid-zinc-plaza';

/** Splits words.txt into its words (one a line, blank lines ignored). */
export function splitWords(text) {
  return text.split(/\r?\n/).filter((w) => w !== '');
}

/** Fetches words.txt from next to this module (the page is same-origin). */
export async function loadWords() {
  const res = await fetch(new URL('words.txt', import.meta.url));
  if (!res.ok) throw new Error(`Could not load the code word list (HTTP ${res.status}).`);
  return splitWords(await res.text());
}

/**
 * Optimal string alignment distance (Damerau-Levenshtein with adjacent
 * swaps): the typos people make are a wrong, missing, extra or swapped letter.
 */
export function editDistance(a, b) {
  a = [...a];
  b = [...b];
  const d = Array.from({ length: a.length + 1 }, (_, i) => {
    const row = new Array(b.length + 1).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2][j - 2] + 1);
      }
      d[i][j] = best;
    }
  }
  return d[a.length][b.length];
}

/** List words within two edits of `word`, closest first (ties in list order), at most three. */
export function nearestWords(word, words) {
  return words
    .map((w) => [editDistance(word, w), w])
    .filter(([dist]) => dist <= SUGGEST_DISTANCE)
    .sort((x, y) => x[0] - y[0]) // stable, so ties keep list order
    .slice(0, MAX_SUGGESTIONS)
    .map(([, w]) => w);
}

function unknownWordMessage(word, suggestions) {
  const q = (w) => `“${w}”`;
  if (suggestions.length === 0) {
    return `${q(word)} is not one of the code words, so check the code with the sender.`;
  }
  return `${q(word)} is not one of the code words: did you mean ${suggestions.map(q).join(' or ')}?`;
}

function parseNameplate(text) {
  // Digits only, no leading zero, so each nameplate has one spelling.
  if (!/^[1-9][0-9]{0,3}$/.test(text)) return null;
  const n = Number(text);
  return n >= 1 && n <= MAX_NAMEPLATE ? n : null;
}

/**
 * Parses what someone typed. Forgiving of case, surrounding space, and
 * spaces or runs of separators between parts; then it must be exactly a
 * nameplate and three list words.
 * Returns {ok:true, nameplate, words, canonical} or {ok:false, error, word?, suggestions?}.
 */
export function parseCode(text, words) {
  const shape = { ok: false, error: `A code is a number and ${CODE_WORDS} words, like ${EXAMPLE}.` };
  if (typeof text !== 'string') return shape;
  const parts = text.trim().toLowerCase().split(/[-\s]+/).filter((p) => p !== '');
  if (parts.length === 0) return shape;
  const nameplate = parseNameplate(parts[0]);
  if (nameplate === null) {
    return {
      ok: false,
      error: `The code must start with a number from 1 to ${MAX_NAMEPLATE}, like the 7 in ${EXAMPLE}.`,
    };
  }
  const rest = parts.slice(1);
  const known = new Set(words);
  // An unknown word is reported before a wrong count: "7-acid-plazza" is
  // better answered with the typo than with the shape.
  for (const w of rest) {
    if (!known.has(w)) {
      const suggestions = nearestWords(w, words);
      return { ok: false, error: unknownWordMessage(w, suggestions), word: w, suggestions };
    }
  }
  if (rest.length !== CODE_WORDS) return shape;
  return { ok: true, nameplate, words: rest, canonical: [nameplate, ...rest].join('-') };
}

/** A uniform integer in [0, n) from the CSPRNG, by rejection so no word is favoured. */
export function randomIndex(n) {
  const limit = Math.floor(0x100000000 / n) * n;
  const buf = new Uint32Array(1);
  for (;;) {
    crypto.getRandomValues(buf);
    if (buf[0] < limit) return buf[0] % n;
  }
}

/**
 * A fresh code for `nameplate`: three words picked by `randomFn(n)`, which
 * returns an integer in [0, n) (default: the CSPRNG). Returns the canonical text.
 */
export function makeCode(nameplate, words, randomFn = randomIndex) {
  if (!Number.isInteger(nameplate) || nameplate < 1 || nameplate > MAX_NAMEPLATE) {
    throw new Error(`A nameplate is a whole number from 1 to ${MAX_NAMEPLATE}.`);
  }
  const picked = [];
  for (let i = 0; i < CODE_WORDS; i++) {
    const k = randomFn(words.length);
    if (!Number.isInteger(k) || k < 0 || k >= words.length) throw new Error('randomFn returned an index outside the word list.');
    picked.push(words[k]);
  }
  return [nameplate, ...picked].join('-');
}

/**
 * Whether `text` looks like an attempt at a code rather than a ticket or
 * link: digits followed by a separator.
 */
export function looksLikeCode(text) {
  return typeof text === 'string' && /^[0-9]+[- ]/.test(text.trim());
}
