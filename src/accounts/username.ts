/** Longest username accepted, in characters after normalisation. */
export const MAX_USERNAME_LENGTH = 128;

/**
 * Returns the form of a username that uniqueness and sign-in compare: trimmed, NFKC-normalised and
 * case-folded. Upper-casing before lower-casing folds characters such as 'ß' to 'ss', which
 * lower-casing alone keeps, so this is close to Unicode full case folding.
 */
export function canonicalUsername(username: string): string {
  return username.trim().normalize('NFKC').toUpperCase().toLowerCase().normalize('NFKC');
}

/** Scripts that usernames are checked against. Letters of any other script count as one more. */
const SCRIPTS = [
  'Latin',
  'Greek',
  'Cyrillic',
  'Armenian',
  'Hebrew',
  'Arabic',
  'Syriac',
  'Thaana',
  'Devanagari',
  'Bengali',
  'Gurmukhi',
  'Gujarati',
  'Oriya',
  'Tamil',
  'Telugu',
  'Kannada',
  'Malayalam',
  'Sinhala',
  'Thai',
  'Lao',
  'Tibetan',
  'Myanmar',
  'Georgian',
  'Hangul',
  'Ethiopic',
  'Cherokee',
  'Khmer',
  'Mongolian',
  'Hiragana',
  'Katakana',
  'Bopomofo',
  'Han',
].map((name) => ({ name, pattern: new RegExp(`\\p{Script=${name}}`, 'u') }));

/**
 * Scripts that one username may combine: Latin with the scripts that Chinese, Japanese and Korean
 * names are written in, which are used together.
 */
const ALLOWED_MIXES = [
  new Set(['Latin', 'Han', 'Hiragana', 'Katakana']),
  new Set(['Latin', 'Han', 'Bopomofo']),
  new Set(['Latin', 'Han', 'Hangul']),
];

/** Returns the scripts of a string's letters, digits and punctuation left out. */
function scriptsOf(text: string): Set<string> {
  const scripts = new Set<string>();
  for (const character of text) {
    if (!/\p{L}/u.test(character)) continue;
    scripts.add(SCRIPTS.find(({ pattern }) => pattern.test(character))?.name ?? 'another script');
  }

  return scripts;
}

/** Returns why a username cannot be used, or undefined when it is acceptable. */
export function usernameProblem(username: string): string | undefined {
  const canonical = canonicalUsername(username);
  if (canonical === '') return 'username must not be empty';
  if ([...canonical].length > MAX_USERNAME_LENGTH) {
    return `username must be at most ${MAX_USERNAME_LENGTH} characters`;
  }
  if (/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(canonical)) {
    return 'username must not contain control or formatting characters';
  }
  // A name such as Cyrillic 'а' followed by Latin 'lice' looks like 'alice' on screen, so it could
  // pass for another user in the audit log, the account list or an app.
  const scripts = [...scriptsOf(canonical)];
  if (scripts.length > 1 && !ALLOWED_MIXES.some((mix) => scripts.every((name) => mix.has(name)))) {
    return `username mixes letters of ${scripts.join(' and ')}, so it can pass for another name; use the letters of one script`;
  }

  return undefined;
}
