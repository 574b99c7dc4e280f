'use strict';
// The login page: trades a token for a session cookie (POST /api/session), then goes to
// the page the visitor asked for, if it is a dashboard page. (Without this script the form
// posts to /api/session, which refuses form bodies: the token never goes into a URL.)

function safeNext() {
  const next = new URLSearchParams(location.search).get('next') || '/ui/';
  return /^\/ui(\/[A-Za-z0-9._~%-]+)*\/?$/.test(next) ? next : '/ui/';
}

document.getElementById('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = document.getElementById('login-error');
  error.hidden = true;
  const token = document.getElementById('token').value.trim();
  let message = 'Login failed.';
  try {
    const response = await fetch('/api/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
      credentials: 'same-origin',
    });
    if (response.ok) {
      location.assign(safeNext());
      return;
    }
    const body = await response.json().catch(() => ({}));
    message = body.error || message;
  } catch (e) {
    message = 'The server cannot be reached.';
  }
  error.textContent = message;
  error.hidden = false;
});
document.body.dataset.ready = 'true';
