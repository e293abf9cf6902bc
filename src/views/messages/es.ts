import type { MessageKey } from './en.ts';

/** Spanish texts, in the formal register (usted) expected of health-care services. */
export const es: Record<MessageKey, string> = {
  'layout.errorPrefix': 'Error',
  'common.continueTo': 'para continuar en {client}',
  'common.cancel': 'Cancelar y volver a la aplicación',
  'common.details': 'Detalles técnicos',
  'common.reference': 'Referencia',
  'common.returnToApp': 'Volver a la aplicación',

  'login.title': 'Iniciar sesión',
  'login.username': 'Nombre de usuario',
  'login.password': 'Contraseña',
  'login.submit': 'Iniciar sesión',
  'login.invalid': 'El nombre de usuario o la contraseña no son correctos.',

  'code.title': 'Introduzca su código',
  'code.intro':
    'Abra su aplicación de autenticación e introduzca el código de 6 dígitos que muestra para esta cuenta.',
  'code.label': 'Código de 6 dígitos',
  'code.submit': 'Verificar',
  'code.useRecovery': '¿Ha perdido el teléfono? Use un código de recuperación',
  'code.invalid': 'El código no es correcto o ya se ha usado.',
  'code.stoppedTitle': 'Inicio de sesión detenido',
  'code.tooMany':
    'Demasiados códigos incorrectos. Se ha detenido este inicio de sesión: vuelva a la aplicación e inicie sesión de nuevo.',
  'recovery.title': 'Use un código de recuperación',
  'recovery.intro':
    'Introduzca uno de los códigos de recuperación que guardó al configurar el inicio de sesión en dos pasos. Cada código sirve una sola vez.',
  'recovery.label': 'Código de recuperación',
  'recovery.useApp': 'Usar el código de la aplicación',

  'enrol.title': 'Configure el inicio de sesión en dos pasos',
  'enrol.replaceTitle': 'Sustituya su autenticador',
  'enrol.intro':
    'Para iniciar sesión hace falta un segundo paso: un código de una aplicación de autenticación en su teléfono u ordenador, como Google Authenticator, Microsoft Authenticator o WinAuth.',
  'enrol.step1': 'En la aplicación, añada una cuenta y escanee este código QR.',
  'enrol.step2':
    'O, si no puede escanearlo, escriba a mano la clave de abajo (basada en el tiempo, 6 dígitos, 30 segundos).',
  'enrol.step3': 'Introduzca el código de 6 dígitos que le muestre entonces la aplicación.',
  'enrol.qrAlt': 'Código QR que añade {username} en {issuer} a una aplicación de autenticación',
  'enrol.keyFor': 'Clave de {username} en {issuer}:',
  'enrol.codeLabel': 'Código de 6 dígitos de la aplicación',
  'enrol.submit': 'Confirmar',
  'enrol.cancel': 'Cancelar',
  'enrol.expired': 'Esta configuración ha caducado. Empiece de nuevo.',

  'codes.title': 'Guarde sus códigos de recuperación',
  'codes.doneTitle': 'Segundo paso completado',
  'codes.intro':
    'Guarde estos códigos de recuperación en un lugar seguro, como un gestor de contraseñas o una copia impresa. Si pierde su autenticador, cada código le permite iniciar sesión una vez. Solo se muestran ahora.',
  'codes.left.one': 'Código de recuperación aceptado. Le queda {count} código de recuperación.',
  'codes.left.other': 'Código de recuperación aceptado. Le quedan {count} códigos de recuperación.',
  'codes.createNew': 'Cree otros nuevos en la página de su cuenta.',
  'codes.continue': 'Continuar',
  'codes.othersSignedOut': 'Se han cerrado sus demás sesiones.',

  'account.clientName': 'la configuración de su cuenta',
  'account.stateOn': 'activado',
  'account.stateOff': 'desactivado',
  'account.title': 'Su cuenta',
  'account.signedInAs': 'Sesión iniciada como {username}.',
  'account.twoStep': 'Inicio de sesión en dos pasos',
  'account.on':
    'El inicio de sesión en dos pasos está {state}: al iniciar sesión se le pide un código de su aplicación de autenticación.',
  'account.codesLeft.one': 'Tiene {count} código de recuperación sin usar.',
  'account.codesLeft.other': 'Tiene {count} códigos de recuperación sin usar.',
  'account.changesNeed':
    'Los cambios siguientes requieren su contraseña actual y un código actual de su aplicación (o uno de sus códigos de recuperación).',
  'account.currentPassword': 'Contraseña actual',
  'account.currentCode': 'Código actual',
  'account.newCodes': 'Crear nuevos códigos de recuperación',
  'account.replace': 'Sustituir mi autenticador',
  'account.off':
    'El inicio de sesión en dos pasos está {state}. Actívelo para iniciar sesión con su contraseña y un código de una aplicación de autenticación en su teléfono.',
  'account.setUp': 'Configurar el inicio de sesión en dos pasos',
  'account.password': 'Contraseña',
  'account.newPassword': 'Nueva contraseña (al menos {min} caracteres)',
  'account.newPasswordAgain': 'Repita la nueva contraseña',
  'account.changePassword': 'Cambiar la contraseña',
  'account.signsOutElsewhere':
    'Al cambiar su contraseña o su autenticador se cierran todas sus demás sesiones.',
  'account.signOut': 'Cerrar sesión',
  'account.back': 'Volver a su cuenta',
  'account.wrongPasswordOrCode': 'La contraseña o el código actuales no son correctos.',
  'account.passwordUnusable': 'No se puede usar la nueva contraseña: {problem}.',
  'password.empty': 'no puede estar vacía',
  'password.tooShort': 'debe tener al menos {min} caracteres',
  'password.tooLong': 'debe tener como máximo {max} caracteres',
  'password.mismatch': 'las dos contraseñas nuevas no coinciden',
  'account.passwordChanged': 'Se ha cambiado su contraseña. Se han cerrado sus demás sesiones.',
  'account.enrolled':
    'El inicio de sesión en dos pasos está activado. Se han cerrado sus demás sesiones.',
  'account.replaced': 'Su nuevo autenticador está configurado. Se han cerrado sus demás sesiones.',
  'account.codesReplaced': 'Sus códigos de recuperación anteriores ya no sirven.',
  'account.notEnrolled': 'El inicio de sesión en dos pasos no está configurado.',
  'account.signedOutTitle': 'Sesión cerrada',
  'account.tooMany':
    'Demasiadas contraseñas o códigos incorrectos. Por su seguridad, se ha cerrado su sesión.',
  'account.signInAgain': 'Iniciar sesión de nuevo',
  'account.notSignedInTitle': 'Sesión no iniciada',
  'account.signInUnfinished': 'El inicio de sesión en la página de su cuenta no terminó.',
  'account.noLongerSignedIn':
    'Ya no tiene la sesión iniciada. Abra de nuevo la página de su cuenta.',
  'account.formExpired': 'Este formulario ha caducado. Abra de nuevo la página de su cuenta.',
  'account.idleNotice.one':
    'Por su seguridad, su sesión se cierra tras {count} minuto sin actividad.',
  'account.idleNotice.other':
    'Por su seguridad, su sesión se cierra tras {count} minutos sin actividad.',
  'account.idleTitle': '¿Sigue ahí?',
  'account.idleWarning':
    'Su sesión se cerrará pronto porque esta página lleva un rato sin usarse. Tiempo restante:',
  'account.idleEnded': 'Se ha cerrado su sesión por inactividad.',
  'account.idleStay': 'Mantener la sesión',

  'consent.title': '¿Permitir el acceso?',
  'consent.intro': '{client} solicita iniciar su sesión como {username} y leer:',
  'consent.allow': 'Permitir',
  'consent.deny': 'Denegar',
  'scope.openid': 'el identificador de su cuenta',
  'scope.profile': 'su nombre de usuario y su nombre',
  'scope.email': 'su dirección de correo electrónico',
  'scope.offline_access': 'acceso mientras no tenga la sesión iniciada',

  'logout.title': 'Cerrar sesión',
  'logout.question':
    '¿Desea cerrar la sesión de {product} y de todas las aplicaciones en las que la inició con esta cuenta?',
  'logout.submit': 'Cerrar sesión en todas las aplicaciones',
  'logout.appOnly': 'Cerrar sesión solo en {client}',
  'loggedOut.title': 'Sesión cerrada',
  'loggedOut.message': 'Ha cerrado la sesión. Ya puede cerrar esta ventana.',
  'loggedOut.messageApp': 'Ha cerrado la sesión de {client}. Ya puede cerrar esta ventana.',

  'error.title': 'No se puede continuar con el inicio de sesión',
  'error.serverTitle': 'Algo ha fallado',
  'error.server': 'Algo ha fallado por nuestra parte. Inténtelo de nuevo dentro de un momento.',
  'error.expired':
    'Esta página de inicio de sesión ha caducado o se abrió en otro navegador. Vuelva a la aplicación e inicie sesión de nuevo.',
  'error.unknownClient': 'La aplicación que le ha enviado aquí no está registrada.',
  'error.badForm': 'No se pudo leer el formulario. Vuelva atrás y envíelo de nuevo.',
  'error.formTooLarge': 'El formulario es demasiado grande. Vuelva atrás e inténtelo de nuevo.',
  'error.unavailableTitle': 'El inicio de sesión no está disponible',
  'error.unavailable':
    'El inicio de sesión no está disponible por un momento porque el servicio no puede acceder a su almacenamiento. Inténtelo de nuevo dentro de unos minutos.',
  'error.notFound': 'Esta página no existe.',
  'oidc.access_denied': 'Se ha denegado el acceso.',
  'oidc.invalid_client':
    'La aplicación que le ha enviado aquí no está registrada o no está bien configurada.',
  'oidc.invalid_redirect_uri':
    'La aplicación que le ha enviado aquí pidió volver a una dirección que no ha registrado.',
  'oidc.invalid_request':
    'La aplicación que le ha enviado aquí hizo una solicitud que no se puede aceptar.',
  'oidc.login_required': 'Tiene que iniciar sesión de nuevo.',
  'oidc.session_not_found':
    'Su sesión ha terminado. Vuelva a la aplicación e inicie sesión de nuevo.',
  'oidc.generic': 'No se pudo completar la solicitud de la aplicación.',
};
