// Warns on the account page before an idle session ends, and lets the user stay signed in. The
// page works without it; the notice under the forms states the idle lifetime in words.
(() => {
  const dialog = document.getElementById('idle-warning');
  if (!(dialog instanceof HTMLDialogElement)) return;
  const countdown = document.getElementById('idle-countdown');
  const ended = document.getElementById('idle-ended');
  const form = dialog.querySelector('form');
  const warnSeconds = Number(dialog.dataset.warnSeconds);
  let deadline = 0;
  let warnTimer;
  let tick;

  const format = (seconds) =>
    `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;

  function update() {
    const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    countdown.textContent = format(left);
    if (left > 0) return;
    clearInterval(tick);
    form.hidden = true;
    ended.hidden = false;
  }

  function warn() {
    update();
    if (!dialog.open) dialog.showModal();
    tick = setInterval(update, 1000);
  }

  function schedule(secondsLeft) {
    deadline = Date.now() + secondsLeft * 1000;
    clearTimeout(warnTimer);
    clearInterval(tick);
    warnTimer = setTimeout(warn, Math.max(0, secondsLeft - warnSeconds) * 1000);
  }

  // "Stay signed in" renews the session without leaving the page; if that fails, the form posts
  // as usual and the page reloads.
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const response = await fetch(form.action, {
        method: 'POST',
        body: new URLSearchParams(new FormData(form)),
        headers: { accept: 'application/json' },
        credentials: 'same-origin',
      });
      if (!response.ok) throw new Error(`keep-alive answered ${response.status}`);
      const { secondsLeft } = await response.json();
      dialog.close();
      schedule(secondsLeft);
    } catch {
      form.submit();
    }
  });

  schedule(Number(dialog.dataset.secondsLeft));
})();
