// The dashboard's one way to call the engine's REST API: `apiFetch` adds the stored bearer
// token and a timeout to every request and reports a 401 to the sign-in code. This module
// also owns the stored token, which the WebSocket URL uses too. It holds no UI.

/** localStorage key of the bearer token. */
export const TOKEN_STORAGE_KEY = 'valmetal.token';
export const REQUEST_TIMEOUT_MS = 10_000;

/** Error codes of a 401 reply: the token is missing, expired or fails verification. */
export const AUTH_ERROR_CODES = new Set(['unauthorized', 'token_expired', 'invalid_token']);

// The token as read once from localStorage, so that a browser that refuses storage
// (private mode with storage blocked) still keeps it for this page's lifetime.
let token = readStoredToken();
const authFailureListeners = new Set();

function readStoredToken() {
  try {
    const stored = localStorage.getItem(TOKEN_STORAGE_KEY);
    return stored && stored.trim() !== '' ? stored.trim() : null;
  } catch (error) {
    console.warn('Failed to read the sign-in token from localStorage', error);
    return null;
  }
}

/** Returns the bearer token, or null when the page has none. */
export function getToken() {
  return token;
}

/** Stores `value` as the bearer token for every later request, or forgets it if empty. */
export function setToken(value) {
  const trimmed = typeof value === 'string' ? value.trim() : '';
  token = trimmed === '' ? null : trimmed;
  try {
    if (token === null) {
      localStorage.removeItem(TOKEN_STORAGE_KEY);
    } else {
      localStorage.setItem(TOKEN_STORAGE_KEY, token);
    }
  } catch (error) {
    console.warn('Failed to store the sign-in token; it lasts until the page reloads', error);
  }
}

/**
 * Registers `listener({code, message})`, called when the engine rejects the token: an API
 * reply with status 401 or a WebSocket that auth closed. Returns a function that removes it.
 */
export function onAuthFailure(listener) {
  authFailureListeners.add(listener);
  return () => authFailureListeners.delete(listener);
}

/** Tells every auth-failure listener that the engine rejected the token. */
export function reportAuthFailure(error) {
  for (const listener of authFailureListeners) listener(error);
}

/**
 * Fetches `path` from the engine with `Authorization: Bearer <token>` when a token is
 * stored, failing with a TimeoutError after REQUEST_TIMEOUT_MS unless `options.signal` is
 * given. A 401 reply also goes to the auth-failure listeners. Returns the Response.
 */
export async function apiFetch(path, options = {}) {
  const headers = new Headers(options.headers ?? {});
  if (token !== null && !headers.has('authorization')) {
    headers.set('authorization', `Bearer ${token}`);
  }
  const signal = options.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS);
  const response = await fetch(path, { ...options, headers, signal });
  if (response.status === 401) {
    const error = await readApiError(response.clone());
    reportAuthFailure(error);
  }
  return response;
}

/**
 * Fetches `path` and parses its JSON body. Returns `{ok: true, body}` or `{ok: false,
 * status, error: {code, message}}`; a network failure or timeout throws.
 */
export async function apiJson(path, options = {}) {
  const response = await apiFetch(path, options);
  if (!response.ok) {
    return { ok: false, status: response.status, error: await readApiError(response) };
  }
  return { ok: true, status: response.status, body: await response.json() };
}

/** Returns the `{code, message}` of an API error response, also for a body that is not JSON. */
export async function readApiError(response) {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text);
    if (typeof body?.error?.message === 'string') return body.error;
  } catch {
    // Errors that the HTTP framework writes itself are plain text.
  }
  const message = text.trim().slice(0, 300) || `HTTP status ${response.status}`;
  return { code: `http_${response.status}`, message };
}

/** Describes a failed fetch (timeout or network) for a message to the operator. */
export function describeFetchError(error) {
  if (error?.name === 'TimeoutError') {
    return `the engine did not answer within ${REQUEST_TIMEOUT_MS / 1000} s`;
  }
  return `the engine could not be reached (${error?.message ?? error})`;
}

/** Returns the WebSocket URL of the engine, with the token as `access_token` if there is one. */
export function webSocketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const base = `${scheme}//${location.host}/ws`;
  return token === null ? base : `${base}?access_token=${encodeURIComponent(token)}`;
}
