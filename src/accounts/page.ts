import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { pageError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { CodeAttempts } from '../mfa/attempts.ts';
import { enrolmentView, openPendingSecret, sealPendingSecret } from '../mfa/enrolment.ts';
import { ACR_MFA, AMR, type SecondFactorPolicy } from '../mfa/policy.ts';
import { normaliseRecoveryCode } from '../mfa/recovery-codes.ts';
import type { ShortLivedStore } from '../mfa/state.ts';
import type { MfaStore } from '../mfa/store.ts';
import { generateSecret, matchingSteps, normaliseTotpCode } from '../mfa/totp.ts';
import { runCheckedStep } from '../interactions/attempts.ts';
import type { SessionStoreAdapter } from '../oidc/adapters/redis.ts';
import { endSessionsFromBrowser, type RevocationCause } from '../oidc/sessions.ts';
import { type AuditEntry, type AuditLog, requestFacts } from '../security/audit.ts';
import type { Encryptor } from '../security/encryption.ts';
import type { RateLimiter } from '../security/rate-limit.ts';
import { formBody, formField, noStore } from '../server/forms.ts';
import type { MessageKey } from '../views/i18n.ts';
import { en } from '../views/messages/en.ts';
import { pageTranslator, renderPage } from '../views/render.ts';
import {
  callbackStateMatches,
  csrfToken,
  csrfTokenValid,
  redirectToSignIn,
  renewSession,
  type SessionLifetimes,
  type SignedInUser,
  signedInUser,
} from './page-session.ts';
import {
  MAX_PASSWORD_LENGTH,
  MIN_PASSWORD_LENGTH,
  passwordProblem,
  verifyPassword,
} from './password.ts';
import type { AccountStore } from './store.ts';

/** The dependencies of the account page, wired once at start-up. */
export interface AccountPageDeps {
  provider: Provider;
  accounts: AccountStore;
  logger: Logger;
  mfa: MfaStore;
  policy: SecondFactorPolicy;
  attempts: CodeAttempts;
  accountSteps: ShortLivedStore<AccountStep>;
  encryptor: Encryptor;
  totpIssuer: string;
  /** The session adapter class, to end the user's other sessions after a change. */
  sessions: SessionStoreAdapter;
  cookieKeys: string[];
  /** Idle and absolute session lifetimes: each use of the page renews the idle one. */
  sessionLifetimes: SessionLifetimes;
  audit: AuditLog;
  rateLimiter: RateLimiter;
}

/** An authenticator being set up from the account page, kept per session uid. */
export interface AccountStep {
  accountId: string;
  pendingSecret: string;
  /** True when it replaces the account's authenticator, false for a first enrolment. */
  replacing: boolean;
}

/** The message, in English, for a wrong current password or code on the account page. */
export const WRONG_PASSWORD_OR_CODE = en['account.wrongPasswordOrCode'];
/** How long before an idle session ends the account page warns, at most. */
const IDLE_WARNING_SECONDS = 120;
const ENROLMENT_SECONDS = 10 * 60;
const ATTEMPT_WINDOW_SECONDS = 15 * 60;

/** The account page's form that an error belongs to, so its fields point at the message. */
type AccountForm = 'twoStep' | 'password';

const accountForm = (ctx: Context): AccountForm =>
  ctx.path === '/account/password' ? 'password' : 'twoStep';

function renderAccount(
  ctx: Context,
  deps: AccountPageDeps,
  user: SignedInUser,
  error?: { key: MessageKey; form: AccountForm; values?: Record<string, string> },
) {
  const secondsLeft = (user.session.exp ?? 0) - Math.floor(Date.now() / 1000);
  ctx.type = 'html';
  ctx.body = renderPage(ctx, 'account', {
    title: 'account.title',
    username: user.account.username,
    enrolled: user.mfa.enrolled,
    recoveryCodesLeft: user.mfa.recoveryCodesLeft,
    csrf: csrfToken(deps.cookieKeys, user),
    error: error && pageTranslator(ctx).t(error.key, error.values),
    errorForm: error?.form,
    minPasswordLength: MIN_PASSWORD_LENGTH,
    idleMinutes: Math.max(1, Math.round(deps.sessionLifetimes.idleSeconds / 60)),
    secondsLeft: Math.max(0, secondsLeft),
    // Warn early enough to respond (WCAG requires 20 s at least), but not for most of a short idle.
    warnSeconds: Math.min(
      IDLE_WARNING_SECONDS,
      Math.max(20, Math.floor(deps.sessionLifetimes.idleSeconds / 2)),
    ),
  });
}

function renderDone(ctx: Context, message: MessageKey, codes?: string[]): void {
  const { t } = pageTranslator(ctx);
  ctx.type = 'html';
  ctx.body = renderPage(ctx, 'recovery-codes', {
    title: codes ? 'codes.title' : 'account.title',
    message: t(message),
    codes,
    link: { href: '/account', text: t('account.back') },
  });
}

function renderSignInAgain(ctx: Context, pageTitle: MessageKey, message: MessageKey): void {
  const { t } = pageTranslator(ctx);
  ctx.status = 400;
  ctx.type = 'html';
  ctx.body = renderPage(ctx, 'error', {
    title: pageTitle,
    message: t(message),
    link: { href: '/account/login', text: t('account.signInAgain') },
  });
}

/**
 * Checks the current password and, for an enrolled account, a current code (TOTP, or a recovery
 * code, which it uses up). Every try takes an attempt of this session, and after the last allowed
 * failure the session ends and the user must sign in again. Returns whether both were right.
 */
async function checkCurrentCredentials(
  ctx: Context,
  deps: AccountPageDeps,
  user: SignedInUser,
): Promise<boolean> {
  const scope = `account:${user.session.uid}`;
  const attempt = await deps.attempts.take(scope, ATTEMPT_WINDOW_SECONDS);
  if (!attempt.allowed) return endSession(ctx, deps, user);

  // Wrong passwords and codes here count toward the account's lock like those of a sign-in.
  const passed = await runCheckedStep(
    ctx,
    deps,
    {
      step: 'account_page',
      username: user.account.username,
      account: user.account,
      interaction: scope,
    },
    async () => {
      const password = formField(ctx, 'password', MAX_PASSWORD_LENGTH);
      const passwordOk =
        password !== '' && (await verifyPassword(user.account.passwordHash, password));
      if (!passwordOk) return 'wrong_password';
      if (!user.mfa.enrolled) return undefined;
      const code = formField(ctx, 'code', 64);
      if (normaliseTotpCode(code) !== undefined) {
        const totp = await deps.mfa.verifyTotp(user.account.id, code);
        if (totp === 'accepted') return undefined;

        return totp === 'replayed' ? 'replayed_code' : 'wrong_code';
      }
      const left =
        normaliseRecoveryCode(code) === undefined
          ? undefined
          : await deps.mfa.useRecoveryCode(user.account.id, code);

      return left === undefined ? 'wrong_code' : undefined;
    },
  );
  if (passed) {
    await deps.attempts.clear(scope);

    return true;
  }
  if (attempt.last) return endSession(ctx, deps, user);
  ctx.status = 400;
  renderAccount(ctx, deps, user, { key: 'account.wrongPasswordOrCode', form: accountForm(ctx) });

  return false;
}

async function endSession(ctx: Context, deps: AccountPageDeps, user: SignedInUser) {
  await user.session.destroy();
  deps.logger.info(
    { accountId: user.account.id, requestId: ctx.state.requestId },
    'account page session ended after too many wrong passwords or codes',
  );
  await deps.audit.record({
    event: 'session.ended',
    ...auditFacts(ctx, user),
    detail: { reason: 'revoked', cause: 'too_many_failures', sessions: 1 },
  });
  renderSignInAgain(ctx, 'account.signedOutTitle', 'account.tooMany');

  return false;
}

/** Returns the account and request facts of an audit row written by this page. */
function auditFacts(
  ctx: Context,
  user: SignedInUser,
): Pick<AuditEntry, 'accountId' | 'username' | 'ip' | 'userAgent' | 'requestId'> {
  return { accountId: user.account.id, username: user.account.username, ...requestFacts(ctx) };
}

/**
 * Ends the user's sessions and grants in every other browser and app, keeping this session, and
 * sends their apps back-channel logout tokens.
 */
async function endOtherSessions(
  ctx: Context,
  deps: AccountPageDeps,
  user: SignedInUser,
  cause: RevocationCause,
) {
  await endSessionsFromBrowser(ctx, deps, {
    account: user.account,
    cause,
    keepSessionId: user.session.jti,
  });
}

async function startEnrolment(ctx: Context, deps: AccountPageDeps, user: SignedInUser) {
  const step: AccountStep = {
    accountId: user.account.id,
    pendingSecret: sealPendingSecret(deps.encryptor, user.account.id, generateSecret()),
    replacing: user.mfa.enrolled,
  };
  await deps.accountSteps.save(user.session.uid, step, ENROLMENT_SECONDS);
  await renderEnrolment(ctx, deps, user, step);
}

async function renderEnrolment(
  ctx: Context,
  deps: AccountPageDeps,
  user: SignedInUser,
  step: AccountStep,
  error?: string,
) {
  const secret = openPendingSecret(deps.encryptor, step.accountId, step.pendingSecret);
  ctx.type = 'html';
  ctx.body = renderPage(ctx, 'enrol', {
    title: step.replacing ? 'enrol.replaceTitle' : 'enrol.title',
    action: '/account/authenticator/confirm',
    cancel: '/account',
    csrf: csrfToken(deps.cookieKeys, user),
    error,
    ...(await enrolmentView(deps.totpIssuer, user.account.username, secret)),
  });
}

/** Marks this session as signed in with the second factor, which the user has just shown. */
async function upgradeSession(user: SignedInUser): Promise<void> {
  user.session.acr = ACR_MFA;
  user.session.amr = [...AMR.totp];
  await user.session.persist();
}

async function confirmEnrolment(ctx: Context, deps: AccountPageDeps, user: SignedInUser) {
  const step = await deps.accountSteps.find(user.session.uid);
  if (!step || step.accountId !== user.account.id) {
    throw pageError('interaction_expired', 'enrol.expired');
  }
  const scope = `account:${user.session.uid}`;
  const attempt = await deps.attempts.take(scope, ATTEMPT_WINDOW_SECONDS);
  if (!attempt.allowed) return endSession(ctx, deps, user);
  const secret = openPendingSecret(deps.encryptor, step.accountId, step.pendingSecret);
  const code = normaliseTotpCode(formField(ctx, 'code', 64));
  const steps = code === undefined ? [] : matchingSteps(secret, code, Date.now());
  const accepted = steps[0];
  if (accepted === undefined) {
    await deps.attempts.recordWrongCode({
      accountId: user.account.id,
      kind: 'enrolment',
      reason: 'wrong',
      scope,
      requestId: ctx.state.requestId,
      ip: ctx.ip,
    });
    if (attempt.last) return endSession(ctx, deps, user);
    ctx.status = 400;
    await renderEnrolment(ctx, deps, user, step, pageTranslator(ctx).t('code.invalid'));

    return false;
  }

  await deps.accountSteps.delete(user.session.uid);
  await deps.attempts.clear(scope);
  let codes: string[] | undefined;
  if (step.replacing) await deps.mfa.replace(user.account.id, secret, accepted);
  else codes = await deps.mfa.enrol(user.account.id, secret, accepted);
  await deps.audit.record({
    event: 'mfa.enrolled',
    ...auditFacts(ctx, user),
    detail: { where: 'account page', replaced: step.replacing },
  });
  deps.logger.info(
    { accountId: user.account.id, replaced: step.replacing },
    step.replacing ? 'TOTP authenticator replaced' : 'TOTP enrolled',
  );
  await endOtherSessions(ctx, deps, user, 'authenticator_changed');
  await upgradeSession(user);
  renderDone(ctx, step.replacing ? 'account.replaced' : 'account.enrolled', codes);

  return true;
}

/** Returns the catalogue text of what is wrong with a new password, by passwordProblem's rules. */
function newPasswordProblem(ctx: Context, newPassword: string): string | undefined {
  const { t } = pageTranslator(ctx);
  if (passwordProblem(newPassword) === undefined) {
    const confirmation = formField(ctx, 'confirm_password', MAX_PASSWORD_LENGTH + 1);

    return newPassword === confirmation ? undefined : t('password.mismatch');
  }
  if (newPassword.length === 0) return t('password.empty');
  if (newPassword.length > MAX_PASSWORD_LENGTH) {
    return t('password.tooLong', { max: MAX_PASSWORD_LENGTH });
  }

  return t('password.tooShort', { min: MIN_PASSWORD_LENGTH });
}

async function changePassword(ctx: Context, deps: AccountPageDeps, user: SignedInUser) {
  const newPassword = formField(ctx, 'new_password', MAX_PASSWORD_LENGTH + 1);
  const problem = newPasswordProblem(ctx, newPassword);
  if (problem) {
    ctx.status = 400;
    renderAccount(ctx, deps, user, {
      key: 'account.passwordUnusable',
      values: { problem },
      form: 'password',
    });

    return;
  }
  if (!(await checkCurrentCredentials(ctx, deps, user))) return;
  await deps.accounts.setPassword(user.account.id, newPassword);
  await deps.audit.record({
    event: 'password.changed',
    ...auditFacts(ctx, user),
    detail: { where: 'account page' },
  });
  deps.logger.info({ accountId: user.account.id }, 'password changed on the account page');
  await endOtherSessions(ctx, deps, user, 'password_changed');
  renderDone(ctx, 'account.passwordChanged');
}

/** Routes of the account page at /account, for users signed in through idp. */
export function createAccountRouter(deps: AccountPageDeps, issuer: URL): Router {
  const router = new Router({ prefix: '/account' });
  router.use(noStore);

  // Every form post needs the signed-in user and the CSRF token of this session. Like a page
  // view, it counts as activity and renews the session.
  async function formUser(ctx: Context): Promise<SignedInUser> {
    const user = await signedInUser(ctx, deps);
    if (!user) {
      throw pageError('forbidden', 'account.noLongerSignedIn');
    }
    if (!csrfTokenValid(deps.cookieKeys, user, formField(ctx, 'csrf', 200))) {
      throw pageError('forbidden', 'account.formExpired');
    }
    await renewSession(ctx, deps.provider, user, deps.sessionLifetimes);

    return user;
  }

  router.get('/', async (ctx) => {
    const user = await signedInUser(ctx, deps);
    if (!user) {
      ctx.status = 303;
      ctx.redirect('/account/login');

      return;
    }
    await renewSession(ctx, deps.provider, user, deps.sessionLifetimes);
    renderAccount(ctx, deps, user);
  });

  // "Stay signed in" of the idle warning: the script requests JSON, a plain form gets the page.
  router.post('/keep-alive', formBody, async (ctx) => {
    const user = await formUser(ctx);
    if (ctx.accepts('html', 'json') === 'json') {
      ctx.body = { secondsLeft: (user.session.exp ?? 0) - Math.floor(Date.now() / 1000) };

      return;
    }
    ctx.status = 303;
    ctx.redirect('/account');
  });

  router.get('/login', (ctx) => redirectToSignIn(ctx, issuer.href));

  router.get('/callback', (ctx) => {
    if (!callbackStateMatches(ctx) || typeof ctx.query['error'] === 'string') {
      renderSignInAgain(ctx, 'account.notSignedInTitle', 'account.signInUnfinished');

      return;
    }
    ctx.status = 303;
    ctx.redirect('/account');
  });

  router.post('/authenticator', formBody, async (ctx) => {
    const user = await formUser(ctx);
    if (await checkCurrentCredentials(ctx, deps, user)) await startEnrolment(ctx, deps, user);
  });

  router.post('/authenticator/confirm', formBody, async (ctx) => {
    await confirmEnrolment(ctx, deps, await formUser(ctx));
  });

  router.post('/recovery-codes', formBody, async (ctx) => {
    const user = await formUser(ctx);
    if (!user.mfa.enrolled) throw pageError('conflict', 'account.notEnrolled');
    if (!(await checkCurrentCredentials(ctx, deps, user))) return;
    const codes = await deps.mfa.regenerateRecoveryCodes(user.account.id);
    await deps.audit.record({
      event: 'mfa.recovery_codes_regenerated',
      ...auditFacts(ctx, user),
      detail: { codes: codes.length },
    });
    deps.logger.info({ accountId: user.account.id }, 'recovery codes regenerated');
    renderDone(ctx, 'account.codesReplaced', codes);
  });

  router.post('/password', formBody, async (ctx) => {
    await changePassword(ctx, deps, await formUser(ctx));
  });

  return router;
}
