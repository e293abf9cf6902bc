import type { Context } from 'koa';
import type { Account } from '../accounts/store.ts';
import { pageError } from '../errors.ts';
import { enrolmentView, openPendingSecret, sealPendingSecret } from '../mfa/enrolment.ts';
import { ACR_MFA, ACR_PASSWORD, AMR, type SecondFactorMethod } from '../mfa/policy.ts';
import { generateSecret, matchingSteps, normaliseTotpCode } from '../mfa/totp.ts';
import { SECOND_FACTOR_CHECK } from '../oidc/provider.ts';
import { endSessionsFromBrowser } from '../oidc/sessions.ts';
import { formField } from '../server/forms.ts';
import { type AuditDetail, type AuditEventName, requestFacts } from '../security/audit.ts';
import { en } from '../views/messages/en.ts';
import { pageTranslator, renderPage } from '../views/render.ts';
import { runCheckedStep } from './attempts.ts';
import { type InteractionDeps, type InteractionDetails, type LoginStep } from './context.ts';

/** The one message, in English, for a wrong, replayed or malformed code of any kind. */
export const INVALID_CODE = en['code.invalid'];
export const TOO_MANY_CODES = en['code.tooMany'];

/** The error for a step that no longer matches a live sign-in in this browser. */
const expired = () => pageError('interaction_expired', 'error.expired');

/** The client of the interaction, as the steps need it. */
export interface ClientInfo {
  clientId: string;
  name?: string;
  requires2fa: boolean;
}

// Prompt reasons that a signed-in session with the password only can satisfy by the second
// factor alone. Any other reason (prompt=login, max_age, no session) asks for the password.
const STEP_UP_REASONS = new Set([SECOND_FACTOR_CHECK, 'essential_acr', 'essential_acrs']);

const epochTime = () => Math.floor(Date.now() / 1000);

const field = (ctx: Context, name: string) => formField(ctx, name, 64);

/** Seconds until the interaction expires: the lifetime of its step record and attempt counter. */
function remaining(details: InteractionDetails): number {
  return Math.max(1, (details.exp ?? epochTime() + 60) - epochTime());
}

function logFor(ctx: Context, deps: InteractionDeps, details: InteractionDetails) {
  return deps.logger.child({
    requestId: ctx.state.requestId,
    interaction: details.uid,
    client: details.params.client_id,
  });
}

/** Loads the step record of the interaction and checks that it is at the expected stage. */
export async function requireStep(
  deps: InteractionDeps,
  details: InteractionDetails,
  stage: LoginStep['stage'],
): Promise<LoginStep> {
  const step = await deps.loginSteps.find(details.uid);
  if (!step || step.stage !== stage) throw expired();

  return step;
}

/**
 * Finishes the login prompt for an account. This and the password-only branch of `afterPassword`
 * are the only calls that hand oidc-provider a login result.
 */
async function finishLogin(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  accountId: string,
  method: SecondFactorMethod | 'password',
): Promise<void> {
  const account = await deps.accounts.findById(accountId);
  await deps.loginSteps.delete(details.uid);
  if (!account || account.disabled) throw expired();
  await deps.attempts.clear(details.uid);
  logFor(ctx, deps, details).info({ accountId, method }, 'sign-in succeeded');
  await deps.audit.record({
    event: 'signin.succeeded',
    accountId,
    username: account.username,
    clientId: String(details.params.client_id),
    ...requestFacts(ctx),
    detail: { method, amr: AMR[method].join(' ') },
  });
  if (method !== 'password') {
    deps.metrics?.secondFactor.inc({ outcome: method === 'totp' ? 'success' : 'recovery_code' });
  }

  await deps.provider.interactionFinished(
    ctx.req,
    ctx.res,
    {
      login: {
        accountId,
        amr: [...AMR[method]],
        acr: method === 'password' ? ACR_PASSWORD : ACR_MFA,
        remember: true,
      },
    },
    { mergeWithLastSubmission: false },
  );
  ctx.respond = false;
}

/** Records an audit event of the second step, with the account, app and request facts. */
function recordStepEvent(
  ctx: Context,
  deps: InteractionDeps,
  client: ClientInfo,
  account: Account,
  event: AuditEventName,
  detail: AuditDetail,
) {
  return deps.audit.record({
    event,
    accountId: account.id,
    username: account.username,
    clientId: client.clientId,
    ...requestFacts(ctx),
    detail,
  });
}

function redirectToStep(ctx: Context, details: InteractionDetails): void {
  ctx.status = 303;
  ctx.redirect(`/interaction/${details.uid}`);
}

/**
 * Goes on after a correct password: finishes the login when the password is enough, otherwise
 * records the account for this interaction and sends the browser to the code or enrolment page.
 */
export async function afterPassword(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  client: ClientInfo,
  accountId: string,
): Promise<void> {
  const decision = await deps.policy.decide({
    accountId,
    clientRequires2fa: client.requires2fa,
    params: details.params,
  });
  if (decision.reasons.length === 0) {
    await finishLogin(ctx, deps, details, accountId, 'password');

    return;
  }
  logFor(ctx, deps, details).info(
    { accountId, reasons: decision.reasons, enrolled: decision.enrolled },
    'second factor required',
  );
  const step: LoginStep = decision.enrolled
    ? { accountId, stage: 'code' }
    : {
        accountId,
        stage: 'enrol',
        pendingSecret: sealPendingSecret(deps.encryptor, accountId, generateSecret()),
      };
  await deps.loginSteps.save(details.uid, step, remaining(details));
  redirectToStep(ctx, details);
}

/**
 * Starts a step-up: the session is signed in with the password only and the request now needs a
 * second factor. Only an enrolled account skips the password; enrolling a new authenticator
 * always asks for the password first.
 */
async function startStepUp(
  deps: InteractionDeps,
  details: InteractionDetails,
): Promise<LoginStep | undefined> {
  const accountId = details.session?.accountId;
  const reasons = details.prompt.reasons;
  if (!accountId || !reasons.every((reason) => STEP_UP_REASONS.has(reason))) return undefined;
  const account = await deps.accounts.findById(accountId);
  if (!account || account.disabled || !(await deps.mfa.status(accountId)).enrolled) {
    return undefined;
  }
  const step: LoginStep = { accountId, stage: 'code', stepUp: true };
  await deps.loginSteps.save(details.uid, step, remaining(details));

  return step;
}

/** Returns the page of the login prompt: the password, or the second step already begun. */
export async function loginStepPage(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  client: ClientInfo,
  renderLogin: () => void,
): Promise<void> {
  const step = (await deps.loginSteps.find(details.uid)) ?? (await startStepUp(deps, details));
  if (!step) {
    renderLogin();

    return;
  }
  switch (step.stage) {
    case 'code':
      renderCodePage(ctx, details, client, 'totp');
      break;
    case 'enrol':
      await renderEnrolPage(ctx, deps, details, client, step);
      break;
    case 'passed':
      renderPassedPage(ctx, details, step);
      break;
  }
}

/** Renders the page that asks for a TOTP code, or for a recovery code instead. */
export function renderCodePage(
  ctx: Context,
  details: InteractionDetails,
  client: ClientInfo,
  kind: 'totp' | 'recovery',
  error?: string,
): void {
  ctx.type = 'html';
  ctx.body = renderPage(ctx, 'code', {
    title: kind === 'totp' ? 'code.title' : 'recovery.title',
    uid: details.uid,
    clientName: client.name,
    kind,
    error,
  });
}

async function renderEnrolPage(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  client: ClientInfo,
  step: LoginStep,
  error?: string,
): Promise<void> {
  const account = await deps.accounts.findById(step.accountId);
  if (!account || !step.pendingSecret) throw expired();
  const secret = openPendingSecret(deps.encryptor, step.accountId, step.pendingSecret);
  ctx.type = 'html';
  ctx.body = renderPage(ctx, 'enrol', {
    title: 'enrol.title',
    clientName: client.name,
    action: `/interaction/${details.uid}/enrol`,
    cancel: `/interaction/${details.uid}/abort`,
    error,
    ...(await enrolmentView(deps.totpIssuer, account.username, secret)),
  });
}

function renderPassedPage(
  ctx: Context,
  details: InteractionDetails,
  step: LoginStep,
  recoveryCodes?: string[],
  message?: string,
): void {
  ctx.type = 'html';
  ctx.body = renderPage(ctx, 'recovery-codes', {
    title: recoveryCodes ? 'codes.title' : 'codes.doneTitle',
    codes: recoveryCodes,
    codesLeft: step.method === 'recoveryCode' ? step.recoveryCodesLeft : undefined,
    message,
    action: `/interaction/${details.uid}/continue`,
    button: pageTranslator(ctx).t('codes.continue'),
  });
}

/**
 * Ends the interaction after too many wrong codes: the step record goes, the interaction's
 * result becomes `access_denied`, and the page links back to the app, which gets that error.
 */
async function stopSignIn(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  accountId: string,
): Promise<void> {
  await deps.loginSteps.delete(details.uid);
  const returnTo = await deps.provider.interactionResult(
    ctx.req,
    ctx.res,
    {
      error: 'access_denied',
      error_description: 'The sign-in was stopped after too many incorrect codes.',
    },
    { mergeWithLastSubmission: false },
  );
  logFor(ctx, deps, details).info({ accountId }, 'sign-in stopped after too many wrong codes');
  ctx.status = 400;
  ctx.type = 'html';
  const { t } = pageTranslator(ctx);
  ctx.body = renderPage(ctx, 'error', {
    title: 'code.stoppedTitle',
    message: t('code.tooMany'),
    link: { href: returnTo, text: t('common.returnToApp') },
  });
}

/**
 * Checks one code of the second step. It takes an attempt first, so parallel requests cannot get
 * more checks than allowed. A wrong code re-renders the page, and the last allowed wrong code
 * ends the interaction.
 */
interface CodeCheck {
  kind: 'totp' | 'recovery' | 'enrolment';
  verify: () => Promise<'accepted' | 'wrong' | 'replayed'>;
  onAccepted: (account: Account) => Promise<void>;
}

async function checkCode(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  client: ClientInfo,
  step: LoginStep,
  { kind, verify, onAccepted }: CodeCheck,
): Promise<void> {
  const attempt = await deps.attempts.take(details.uid, remaining(details));
  if (!attempt.allowed) {
    await stopSignIn(ctx, deps, details, step.accountId);

    return;
  }
  const account = await deps.accounts.findById(step.accountId);
  if (!account) throw expired();
  // Wrong and replayed codes count toward the account's lock like wrong passwords, and a
  // locked account is rejected with the same message as a wrong code.
  let result: Awaited<ReturnType<CodeCheck['verify']>> | 'locked' = 'locked';
  const passed = await runCheckedStep(
    ctx,
    deps,
    {
      step: 'code',
      username: account.username,
      account,
      clientId: client.clientId,
      interaction: details.uid,
    },
    async () => {
      result = await verify();
      if (result === 'accepted') return undefined;

      return result === 'replayed' ? 'replayed_code' : 'wrong_code';
    },
  );
  if (passed) {
    await onAccepted(account);

    return;
  }
  logFor(ctx, deps, details).info(
    { accountId: step.accountId, kind, reason: result === 'locked' ? 'locked' : `${result} code` },
    'second factor failed',
  );
  if (attempt.last) {
    await stopSignIn(ctx, deps, details, step.accountId);

    return;
  }
  ctx.status = 400;
  const invalid = pageTranslator(ctx).t('code.invalid');
  if (kind === 'enrolment') await renderEnrolPage(ctx, deps, details, client, step, invalid);
  else renderCodePage(ctx, details, client, kind, invalid);
}

export async function submitTotp(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  client: ClientInfo,
): Promise<void> {
  const step = await requireStep(deps, details, 'code');
  const code = field(ctx, 'code');
  await checkCode(ctx, deps, details, client, step, {
    kind: 'totp',
    verify: async () => {
      const result = await deps.mfa.verifyTotp(step.accountId, code);
      if (result === 'not_enrolled') throw expired();

      return result;
    },
    onAccepted: () => finishLogin(ctx, deps, details, step.accountId, 'totp'),
  });
}

export async function submitRecoveryCode(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  client: ClientInfo,
): Promise<void> {
  const step = await requireStep(deps, details, 'code');
  const code = field(ctx, 'code');
  let left: number | undefined;
  await checkCode(ctx, deps, details, client, step, {
    kind: 'recovery',
    verify: async () => {
      left = await deps.mfa.useRecoveryCode(step.accountId, code);

      return left === undefined ? 'wrong' : 'accepted';
    },
    onAccepted: async (account) => {
      await recordStepEvent(ctx, deps, client, account, 'mfa.recovery_code_used', {
        recoveryCodesLeft: left ?? 0,
      });
      logFor(ctx, deps, details).info(
        { accountId: step.accountId, recoveryCodesLeft: left },
        'recovery code used',
      );
      const passed: LoginStep = {
        ...step,
        stage: 'passed',
        method: 'recoveryCode',
        recoveryCodesLeft: left,
      };
      await deps.loginSteps.save(details.uid, passed, remaining(details));
      renderPassedPage(ctx, details, passed);
    },
  });
}

/**
 * Ends the account's sessions, grants and refresh tokens in other browsers after an enrolment, so
 * a session opened with the password alone does not outlive the new authenticator. This browser's
 * session stays when it is signed in as the same account, because this browser has just shown the
 * password and a code of the new authenticator. oidc-provider 9 also rejects the end of a sign-in
 * whose interaction began in a session that is gone. Returns how many sessions and grants ended.
 */
async function endOtherSessions(
  ctx: Context,
  deps: InteractionDeps,
  account: Account,
): Promise<number> {
  const current = await deps.provider.Session.get(ctx);

  return endSessionsFromBrowser(ctx, deps, {
    account,
    cause: 'authenticator_changed',
    keepSessionId: current.accountId === account.id ? current.jti : undefined,
  });
}

export async function submitEnrolment(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
  client: ClientInfo,
): Promise<void> {
  const step = await requireStep(deps, details, 'enrol');
  if (!step.pendingSecret) throw expired();
  const secret = openPendingSecret(deps.encryptor, step.accountId, step.pendingSecret);
  const code = normaliseTotpCode(field(ctx, 'code'));
  let acceptedStep = 0;
  await checkCode(ctx, deps, details, client, step, {
    kind: 'enrolment',
    verify: async () => {
      const steps = code === undefined ? [] : matchingSteps(secret, code, Date.now());
      acceptedStep = steps[0] ?? 0;

      return steps.length > 0 ? 'accepted' : 'wrong';
    },
    onAccepted: async (account) => {
      const codes = await deps.mfa.enrol(step.accountId, secret, acceptedStep);
      await recordStepEvent(ctx, deps, client, account, 'mfa.enrolled', {
        where: 'sign-in',
        replaced: false,
      });
      logFor(ctx, deps, details).info({ accountId: step.accountId }, 'TOTP enrolled');
      const ended = await endOtherSessions(ctx, deps, account);
      const passed: LoginStep = { accountId: step.accountId, stage: 'passed', method: 'totp' };
      await deps.loginSteps.save(details.uid, passed, remaining(details));
      const notice = ended > 0 ? pageTranslator(ctx).t('codes.othersSignedOut') : undefined;
      renderPassedPage(ctx, details, passed, codes, notice);
    },
  });
}

/** Finishes the login once the user has gone past the page shown after the second step. */
export async function submitContinue(
  ctx: Context,
  deps: InteractionDeps,
  details: InteractionDetails,
): Promise<void> {
  const step = await requireStep(deps, details, 'passed');
  if (!step.method) throw expired();
  await finishLogin(ctx, deps, details, step.accountId, step.method);
}
