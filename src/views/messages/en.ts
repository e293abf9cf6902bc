/**
 * English texts of every page. Keys name the page and the text; `{name}` marks a value filled in
 * when the page is rendered. Plural texts have `.one` and `.other` variants.
 */
export const en = {
  'layout.errorPrefix': 'Error',
  'common.continueTo': 'to continue to {client}',
  'common.cancel': 'Cancel and return to the app',
  'common.details': 'Technical details',
  'common.reference': 'Reference',
  'common.returnToApp': 'Return to the app',

  'login.title': 'Sign in',
  'login.username': 'Username',
  'login.password': 'Password',
  'login.submit': 'Sign in',
  'login.invalid': 'The username or password is incorrect.',

  'code.title': 'Enter your code',
  'code.intro': 'Open your authenticator app and enter the 6-digit code it shows for this account.',
  'code.label': '6-digit code',
  'code.submit': 'Verify',
  'code.useRecovery': 'Lost your phone? Use a recovery code',
  'code.invalid': 'The code is incorrect or has already been used.',
  'code.stoppedTitle': 'Sign-in stopped',
  'code.tooMany':
    'Too many incorrect codes. This sign-in was stopped: return to the app and sign in again.',
  'recovery.title': 'Use a recovery code',
  'recovery.intro':
    'Enter one of the recovery codes that you saved when you set up two-step sign-in. Each code works once.',
  'recovery.label': 'Recovery code',
  'recovery.useApp': 'Use the code from your app instead',

  'enrol.title': 'Set up two-step sign-in',
  'enrol.replaceTitle': 'Replace your authenticator',
  'enrol.intro':
    'Signing in needs a second step: a code from an authenticator app on your phone or computer, such as Google Authenticator, Microsoft Authenticator or WinAuth.',
  'enrol.step1': 'In the app, add an account and scan this QR code.',
  'enrol.step2':
    'Or, if you cannot scan it, enter the key below by hand (time-based, 6 digits, 30 seconds).',
  'enrol.step3': 'Enter the 6-digit code that the app then shows.',
  'enrol.qrAlt': 'QR code that adds {username} at {issuer} to an authenticator app',
  'enrol.keyFor': 'Key for {username} at {issuer}:',
  'enrol.codeLabel': '6-digit code from the app',
  'enrol.submit': 'Confirm',
  'enrol.cancel': 'Cancel',
  'enrol.expired': 'This setup has expired. Start it again.',

  'codes.title': 'Save your recovery codes',
  'codes.doneTitle': 'Second step done',
  'codes.intro':
    'Save these recovery codes somewhere safe, such as a password manager or a printout. If you lose your authenticator, each code lets you sign in once. They are shown only now.',
  'codes.left.one': 'Recovery code accepted. You have {count} recovery code left.',
  'codes.left.other': 'Recovery code accepted. You have {count} recovery codes left.',
  'codes.createNew': 'Create new ones on your account page.',
  'codes.continue': 'Continue',
  'codes.othersSignedOut': 'Your other sessions were signed out.',

  'account.clientName': 'your account settings',
  'account.stateOn': 'on',
  'account.stateOff': 'off',
  'account.title': 'Your account',
  'account.signedInAs': 'Signed in as {username}.',
  'account.twoStep': 'Two-step sign-in',
  'account.on':
    'Two-step sign-in is {state}: signing in asks for a code from your authenticator app.',
  'account.codesLeft.one': 'You have {count} unused recovery code.',
  'account.codesLeft.other': 'You have {count} unused recovery codes.',
  'account.changesNeed':
    'The changes below need your current password and a current code from your app (or one of your recovery codes).',
  'account.currentPassword': 'Current password',
  'account.currentCode': 'Current code',
  'account.newCodes': 'Create new recovery codes',
  'account.replace': 'Replace my authenticator',
  'account.off':
    'Two-step sign-in is {state}. Turn it on to sign in with your password and a code from an authenticator app on your phone.',
  'account.setUp': 'Set up two-step sign-in',
  'account.password': 'Password',
  'account.newPassword': 'New password (at least {min} characters)',
  'account.newPasswordAgain': 'New password again',
  'account.changePassword': 'Change password',
  'account.signsOutElsewhere':
    'Changing your password or authenticator signs you out everywhere else.',
  'account.signOut': 'Sign out',
  'account.back': 'Back to your account',
  'account.wrongPasswordOrCode': 'The current password or code is incorrect.',
  'account.passwordUnusable': 'The new password cannot be used: {problem}.',
  'password.empty': 'it must not be empty',
  'password.tooShort': 'it must be at least {min} characters',
  'password.tooLong': 'it must be at most {max} characters',
  'password.mismatch': 'the two new passwords do not match',
  'account.passwordChanged': 'Your password was changed. Your other sessions were signed out.',
  'account.enrolled': 'Two-step sign-in is on. Your other sessions were signed out.',
  'account.replaced': 'Your new authenticator is set up. Your other sessions were signed out.',
  'account.codesReplaced': 'Your old recovery codes no longer work.',
  'account.notEnrolled': 'Two-step sign-in is not set up.',
  'account.signedOutTitle': 'Signed out',
  'account.tooMany': 'Too many incorrect passwords or codes. You were signed out for your safety.',
  'account.signInAgain': 'Sign in again',
  'account.notSignedInTitle': 'Not signed in',
  'account.signInUnfinished': 'The sign-in to your account page did not finish.',
  'account.noLongerSignedIn': 'You are no longer signed in. Open your account page again.',
  'account.formExpired': 'This form has expired. Open your account page again.',
  'account.idleNotice.one':
    'For your safety, you are signed out after {count} minute without activity.',
  'account.idleNotice.other':
    'For your safety, you are signed out after {count} minutes without activity.',
  'account.idleTitle': 'Are you still there?',
  'account.idleWarning':
    'You will be signed out soon because this page has not been used for a while. Time left:',
  'account.idleEnded': 'You were signed out because of inactivity.',
  'account.idleStay': 'Stay signed in',

  'consent.title': 'Allow access?',
  'consent.intro': '{client} asks to sign you in as {username} and to read:',
  'consent.allow': 'Allow',
  'consent.deny': 'Deny',
  'scope.openid': 'your account identifier',
  'scope.profile': 'your username and name',
  'scope.email': 'your email address',
  'scope.offline_access': 'access while you are not signed in',

  'logout.title': 'Sign out',
  'logout.question': 'Do you want to sign out of {product} and every app you signed in to with it?',
  'logout.submit': 'Sign out of all apps',
  'logout.appOnly': 'Sign out of {client} only',
  'loggedOut.title': 'Signed out',
  'loggedOut.message': 'You are signed out. You can close this window.',
  'loggedOut.messageApp': 'You are signed out of {client}. You can close this window.',

  'error.title': 'Sign-in cannot continue',
  'error.serverTitle': 'Something went wrong',
  'error.server': 'Something went wrong on our side. Please try again in a moment.',
  'error.expired':
    'This sign-in page has expired or was opened in another browser. Go back to the app and sign in again.',
  'error.unknownClient': 'The app that sent you here is not registered.',
  'error.badForm': 'The form could not be read. Go back and submit it again.',
  'error.formTooLarge': 'The form is too large. Go back and try again.',
  'error.unavailableTitle': 'Sign-in is unavailable',
  'error.unavailable':
    'Sign-in is unavailable for a moment because the service cannot reach its storage. Please try again in a few minutes.',
  'error.notFound': 'This page does not exist.',
  'oidc.access_denied': 'Access was refused.',
  'oidc.invalid_client': 'The app that sent you here is not registered or is set up wrongly.',
  'oidc.invalid_redirect_uri':
    'The app that sent you here asked to return to an address it has not registered.',
  'oidc.invalid_request': 'The app that sent you here made a request that cannot be accepted.',
  'oidc.login_required': 'You need to sign in again.',
  'oidc.session_not_found': 'Your session has ended. Go back to the app and sign in again.',
  'oidc.generic': 'The request from the app could not be completed.',
} as const;

export type MessageKey = keyof typeof en;
