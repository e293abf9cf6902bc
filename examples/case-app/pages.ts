/** HTML of the example app. Every interpolated value is escaped by the `html` tag. */

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** HTML that is already safe, such as the output of `html`. */
export class SafeHtml {
  readonly text: string;

  constructor(text: string) {
    this.text = text;
  }
}

function render(value: unknown): string {
  if (value instanceof SafeHtml) return value.text;
  if (Array.isArray(value)) return value.map(render).join('');
  if (value === undefined || value === null || value === false) return '';

  return String(value).replace(/[&<>"']/g, (char) => ESCAPES[char] ?? char);
}

/** Tagged template that escapes each value unless it is SafeHtml (or an array of it). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  return new SafeHtml(
    strings.reduce((out, piece, index) => out + piece + render(values[index]), ''),
  );
}

export function layout(title: string, body: SafeHtml): string {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · Case Manager</title>
        <link rel="stylesheet" href="/app.css" />
      </head>
      <body>
        <header>
          <p class="brand">Case Manager <span>(example app)</span></p>
        </header>
        <main>
          <h1>${title}</h1>
          ${body}
        </main>
      </body>
    </html> `.text;
}

/** Fictional clients of a case-management service; the point is that they sit behind sign-in. */
const CASELOAD = [
  { id: 'C-1042', name: 'Rosa Delgado', program: 'Housing support', next: '2 June, 10:00' },
  { id: 'C-1057', name: 'Malik Okafor', program: 'Medical case management', next: '3 June, 14:30' },
  { id: 'C-1063', name: 'Wen Li', program: 'Benefits counselling', next: '5 June, 09:15' },
  { id: 'C-1071', name: 'Samuel Brooks', program: 'Medication adherence', next: '6 June, 11:45' },
];

export interface SignedInUser {
  name: string;
  username: string;
  amr: string[];
  secondFactor: boolean;
}

export function homePage(user: SignedInUser | undefined): string {
  if (!user) {
    return layout(
      'Welcome',
      html`
        <p>
          Case Manager keeps the records of the people you support. Sign in with your organisation's
          account to see your caseload.
        </p>
        <p><a class="button" href="/login">Sign in</a></p>
        <p class="note">
          Prefer Spanish?
          <a href="/login?lang=es" hreflang="es" lang="es">Iniciar sesión en español</a>
        </p>
      `,
    );
  }
  const rows = CASELOAD.map(
    (entry) => html`
      <tr>
        <th scope="row">${entry.id}</th>
        <td>${entry.name}</td>
        <td>${entry.program}</td>
        <td>${entry.next}</td>
      </tr>
    `,
  );

  return layout(
    'Your caseload',
    html`
      <p>
        Signed in as <strong id="user-name">${user.name}</strong> (<span id="user-username"
          >${user.username}</span
        >).
      </p>
      <p id="second-factor">
        Second factor: <strong>${user.secondFactor ? 'yes' : 'no'}</strong> (authentication methods:
        ${user.amr.join(', ') || 'none reported'})
      </p>
      <table>
        <caption>
          Clients assigned to you
        </caption>
        <thead>
          <tr>
            <th scope="col">Case</th>
            <th scope="col">Name</th>
            <th scope="col">Program</th>
            <th scope="col">Next appointment</th>
          </tr>
        </thead>
        <tbody>
          ${rows}
        </tbody>
      </table>
      <form method="post" action="/logout">
        <button type="submit">Sign out</button>
      </form>
    `,
  );
}

export function signedOutPage(): string {
  return layout(
    'Signed out',
    html`
      <p role="status">You are signed out of Case Manager and of the sign-in service.</p>
      <p><a class="button" href="/login">Sign in again</a></p>
    `,
  );
}

export function errorPage(title: string, message: string): string {
  return layout(
    title,
    html`
      <p role="alert">${message}</p>
      <p><a href="/">Back to the start page</a></p>
    `,
  );
}

export const stylesheet = `:root { font-family: system-ui, sans-serif; line-height: 1.5; color: #1b1b1b; background: #fff; }
body { margin: 0; }
header { background: #0f4c5c; color: #fff; padding: 0.5rem 1rem; }
.brand { margin: 0; font-weight: 700; }
.brand span { font-weight: 400; }
main { max-width: 50rem; padding: 1rem; margin: 0 auto; }
a { color: #0f4c5c; }
.button, button { display: inline-block; padding: 0.6rem 1.2rem; font: inherit; background: #0f4c5c;
  color: #fff; border: 0; border-radius: 0.25rem; text-decoration: none; cursor: pointer; }
:focus-visible { outline: 3px solid #b35900; outline-offset: 2px; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
caption { text-align: left; font-weight: 600; }
th, td { text-align: left; padding: 0.4rem; border-bottom: 1px solid #767676; }
.note { color: #4a4a4a; }
`;
