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

  return undefined;
}
