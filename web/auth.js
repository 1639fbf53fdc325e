// Sign-in for the dashboard: takes a token from the sign-in link, reads who the token
// belongs to from `GET /api/v1/me`, shows that person in the header with a sign-out
// control, and shows the sign-in panel whenever the engine rejects the token. The token
// itself and the request helper live in api.js.

import { apiFetch, describeFetchError, getToken, onAuthFailure, readApiError, setToken } from '/api.js';

/** Display names of the roles a token can carry. */
const ROLE_LABELS = {
  admin: 'Admin',
  operator: 'Operator',
  farm_viewer: 'Farm viewer',
};

/** Subject of the identity that the engine returns when it runs without auth. */
export const ANONYMOUS_SUBJECT = 'anonymous';

/** Panel texts by the error code of the rejection. */
const REJECTION_TEXTS = {
  token_expired: 'Your sign-in token has expired.',
  invalid_token: 'The engine rejected the sign-in token.',
  unauthorized: 'The engine needs a sign-in token.',
};

const identityListeners = new Set();
const signInListeners = new Set();

const auth = {
  /** `{subject, name, role, farms, expires_at}` from /api/v1/me, or null until it loads. */
  identity: null,
  panelOpen: false,
};

/**
 * Moves a token from the address (`#token=…` or `?token=…`) into storage and removes it
 * from the address bar and the session history, so that it does not stay on screen or in
 * bookmarks. Returns whether the address carried a token.
 */
export function captureTokenFromUrl() {
  const url = new URL(location.href);
  const fragment = new URLSearchParams(url.hash.replace(/^#/, ''));
  const fromFragment = fragment.get('token');
  const fromQuery = url.searchParams.get('token');
  const token = fromFragment ?? fromQuery;
  if (token === null) return false;

  setToken(token);
  if (fromFragment !== null) url.hash = '';
  url.searchParams.delete('token');
  const clean = `${url.pathname}${url.search}${url.hash}`;
  history.replaceState(history.state, '', clean);
  return true;
}

/** Returns the identity the page runs under, or null before it has loaded. */
export function currentIdentity() {
  return auth.identity;
}

/**
 * Returns whether the caller may act (alarm actions, desired values). A farm viewer only
 * reads, and the engine answers 403 `forbidden` to its requests anyway. Before the
 * identity loads the page allows nothing.
 */
export function canAct() {
  return auth.identity !== null && auth.identity.role !== 'farm_viewer';
}

/** Returns whether the identity is a person named by a token, not the engine without auth. */
export function isSignedIn() {
  return auth.identity !== null && auth.identity.subject !== ANONYMOUS_SUBJECT;
}

/** Registers `listener(identity)`, called each time a new identity is loaded. */
export function onIdentity(listener) {
  identityListeners.add(listener);
}

/** Registers `listener()`, called after the operator signs in with a pasted token. */
export function onSignedIn(listener) {
  signInListeners.add(listener);
}

/**
 * Loads the caller's identity from `GET /api/v1/me`. Returns `loaded`, `rejected` (the
 * engine answered 401 and the sign-in panel shows) or `unreachable` (the engine did not
 * answer, so the caller retries later). An engine without the endpoint answers 404, and
 * the page then runs as the anonymous admin, as against an engine without auth.
 */
export async function loadIdentity() {
  let response;
  try {
    response = await apiFetch('/api/v1/me');
  } catch (error) {
    console.warn(`Failed to load the signed-in identity: ${describeFetchError(error)}`);
    return 'unreachable';
  }
  if (response.status === 401) return 'rejected';
  if (response.status === 404) {
    setIdentity({ subject: ANONYMOUS_SUBJECT, name: '', role: 'admin', farms: null });
    return 'loaded';
  }
  if (!response.ok) {
    const error = await readApiError(response);
    console.warn(`GET /api/v1/me failed with status ${response.status}: ${error.message}`);
    return 'unreachable';
  }
  setIdentity(normalizeIdentity(await response.json()));
  return 'loaded';
}

function normalizeIdentity(body) {
  const farms = Array.isArray(body?.farms) ? body.farms.map(String) : null;
  return {
    subject: String(body?.subject ?? ''),
    name: String(body?.name ?? body?.subject ?? ''),
    role: Object.hasOwn(ROLE_LABELS, body?.role) ? body.role : 'farm_viewer',
    farms,
    expiresAt: Number.isFinite(body?.expires_at) ? body.expires_at : null,
  };
}

function setIdentity(identity) {
  auth.identity = identity;
  document.body.dataset.role = identity.role;
  renderIdentity();
  for (const listener of identityListeners) listener(identity);
}

/** Describes the farms an identity sees, for the header. */
export function describeFarms(farms) {
  if (farms === null) return 'all farms';
  if (farms.length === 0) return 'no farm';
  return farms.join(', ');
}

function renderIdentity() {
  const identity = auth.identity;
  const root = document.getElementById('user');
  const signedIn = isSignedIn();
  root.hidden = identity === null || (!signedIn && getToken() === null);
  if (identity === null) return;
  document.getElementById('user-name').textContent = signedIn ? identity.name : 'No sign-in';
  document.getElementById('user-role').textContent = ROLE_LABELS[identity.role];
  document.getElementById('user-farms').textContent = describeFarms(identity.farms);
  root.title = signedIn
    ? `Signed in as ${identity.subject}` +
      (identity.expiresAt ? `; the token expires ${new Date(identity.expiresAt).toLocaleString()}` : '')
    : 'The engine runs without sign-in';
}

// ---------------------------------------------------------------------------------------
// Sign-in panel

function signInDialog() {
  return document.getElementById('signin-dialog');
}

/** Shows the sign-in panel, saying why with the rejection's error code. */
export function showSignIn(error) {
  const dialog = signInDialog();
  const reason = REJECTION_TEXTS[error?.code] ?? REJECTION_TEXTS.unauthorized;
  const detail = typeof error?.message === 'string' ? error.message : '';
  document.getElementById('signin-reason').textContent = reason;
  const detailElement = document.getElementById('signin-detail');
  detailElement.textContent = detail;
  detailElement.hidden = detail === '';
  document.getElementById('signin-error').hidden = true;
  document.body.dataset.auth = 'required';
  auth.panelOpen = true;
  if (!dialog.open) dialog.showModal();
  document.getElementById('signin-token').focus();
}

function hideSignIn() {
  auth.panelOpen = false;
  delete document.body.dataset.auth;
  const dialog = signInDialog();
  if (dialog.open) dialog.close();
}

/** Returns whether the sign-in panel is showing, so that the page holds its requests. */
export function signInRequired() {
  return auth.panelOpen;
}

async function handleSignInSubmit(event) {
  event.preventDefault();
  const input = document.getElementById('signin-token');
  const errorElement = document.getElementById('signin-error');
  const pasted = extractToken(input.value);
  if (pasted === '') {
    errorElement.textContent = 'Paste a token or a sign-in link.';
    errorElement.hidden = false;
    return;
  }
  const previous = getToken();
  setToken(pasted);
  const outcome = await loadIdentity();
  if (outcome === 'loaded') {
    input.value = '';
    hideSignIn();
    for (const listener of signInListeners) listener();
    return;
  }
  setToken(previous);
  errorElement.textContent =
    outcome === 'rejected'
      ? 'The engine rejected this token. Check that it is complete and not expired.'
      : 'The engine could not be reached to check the token. Try again.';
  errorElement.hidden = false;
  // A rejection reopened the panel with its own reason, which stays.
  if (!signInDialog().open) signInDialog().showModal();
}

/** Returns the token in `text`, which may be the token or a whole sign-in link. */
function extractToken(text) {
  const trimmed = text.trim();
  const match = /[#?&]token=([^&#\s]+)/.exec(trimmed);
  return match ? decodeURIComponent(match[1]) : trimmed;
}

/** Forgets the token and reloads, so that no state received under it stays on screen. */
function signOut() {
  setToken(null);
  location.reload();
}

/** Wires the header's sign-out control, the sign-in panel and the 401 handling. */
export function startAuth() {
  document.getElementById('sign-out').addEventListener('click', signOut);
  document.getElementById('signin-form').addEventListener('submit', handleSignInSubmit);
  // The panel has no other way forward, so Escape does not close it.
  signInDialog().addEventListener('cancel', (event) => event.preventDefault());
  onAuthFailure((error) => showSignIn(error));
}
