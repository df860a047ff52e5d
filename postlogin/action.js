/**
 * Auth0 post-login Action: links the login's identity into the existing user
 * with the same verified email, as decided by the linking decision service
 * (Go package github.com/idlink/linking/postlogin), and ends the login as
 * that user with api.authentication.setPrimaryUser.
 *
 * Secrets of the Action:
 *   LINKING_URL         the service's endpoint, e.g. https://linking.example.com/v1/post-login
 *   LINKING_SECRET      the key shared with the service (at least 32 bytes)
 *   LINKING_FAIL_OPEN   optional; "true" lets the login go on, unlinked, when the
 *                       service gives no usable answer. Otherwise such a login is
 *                       denied with a "try again" message.
 *   LINKING_TIMEOUT_MS  optional; how long to wait for the answer, default 6000,
 *                       at most 15000 (Auth0 gives an Action 20 s in all).
 *
 * Secrets for confirm before linking (all three, or none):
 *   LINKING_CONFIRM_SECRET   signs the token sent with the person to the consent
 *                            page (at least 32 bytes; not LINKING_SECRET)
 *   LINKING_CONTINUE_SECRET  verifies the token the person brings back (at least
 *                            32 bytes; differs from both others)
 *   LINKING_CLIENT_ID        the client id of the linking client, whose logins (the
 *                            proofs) this Action leaves alone
 *
 * The Action sends no request (so the login costs no Management API call) when:
 *   - the login is one of the linking client (LINKING_CLIENT_ID): a proof;
 *   - the login is a refresh token exchange: it authenticates no one;
 *   - the user has no email, or an unverified one: nothing can be linked, and
 *     the service would answer "none";
 *   - the user already holds several identities: it is a primary, which is
 *     never linked into another user (the service would answer "none");
 *   - app_metadata.linking.checked_email equals the user's email: the service
 *     said earlier that there is nothing to link for this verified email. A
 *     changed email is checked again.
 *
 * It applies the answer:
 *   set_primary_user  api.authentication.setPrimaryUser(primary_user_id), once,
 *                     and no metadata write (Auth0 discards metadata set in the
 *                     same execution as setPrimaryUser);
 *   none              nothing, and the marker above when the answer says "remember";
 *   deny              api.access.deny(message);
 *   confirm           (only when the request said it accepts it: the confirm
 *                     secrets are set and api.redirect.canRedirect() is true)
 *                     api.redirect.sendUserTo(<origin of LINKING_URL>/confirm) with
 *                     a session_token from api.redirect.encodeToken that carries
 *                     the login and the accounts offered, less those the person
 *                     declined before (app_metadata.linking.declined); nothing when
 *                     every account offered was declined.
 * onContinuePostLogin reads the token the person brings back with
 * api.redirect.validateToken (signature, expiry, state), checks its type and that
 * its sub is this login's user, and then: linked -> setPrimaryUser(primary_user_id);
 * not_now -> nothing (asked again next time); declined -> the accounts are added
 * to app_metadata.linking.declined; denied or anything else -> api.access.deny.
 * A network error, a timeout, a status other than 2xx, or an answer it does not
 * understand counts as no usable answer (see LINKING_FAIL_OPEN).
 *
 * Requests are signed: X-Linking-Timestamp is the time in unix seconds, and
 * X-Linking-Signature is "v1=" + hex HMAC-SHA256(secret, timestamp + "." + body).
 */
'use strict';

const { createHmac } = require('node:crypto');

const SCHEMA_VERSION = 1;
const DEFAULT_TIMEOUT_MS = 6000;
const MAX_TIMEOUT_MS = 15000;
const MAX_USER_ID_LENGTH = 128;
const MARKER_KEY = 'linking';
const MESSAGE_UNAVAILABLE = 'Sign-in is temporarily unavailable. Please try again in a moment.';
const MESSAGE_DENIED = 'We could not sign you in. Please contact support.';
const CONFIRM_PATH = '/confirm';
const CONFIRM_TOKEN_SECONDS = 120;
const TOKEN_TYPE_CONFIRM = 'linking.confirm';
const TOKEN_TYPE_CONTINUE = 'linking.continue';
const MAX_CANDIDATES = 5;
const MAX_DECLINED = 20;

exports.onExecutePostLogin = async (event, api) => {
  const user = event.user || {};
  if (skipReason(event) !== '') {
    return;
  }
  const secrets = event.secrets || {};
  const failOpen = secrets.LINKING_FAIL_OPEN === 'true';
  const confirm = canConfirm(secrets, api);

  let answer;
  try {
    answer = await ask(event, secrets, confirm);
  } catch (err) {
    console.log(`linking: no usable answer (${err && err.message}); ${failOpen ? 'login goes on (fail open)' : 'login denied (fail closed)'}`);
    if (!failOpen) {
      api.access.deny(MESSAGE_UNAVAILABLE);
    }
    return;
  }

  switch (answer.action) {
    case 'set_primary_user':
      console.log(`linking: login ends as ${answer.primary_user_id} (${answer.reason})`);
      api.authentication.setPrimaryUser(answer.primary_user_id);
      return;
    case 'none':
      if (answer.remember === true) {
        api.user.setAppMetadata(MARKER_KEY, { checked_email: user.email });
      }
      return;
    case 'deny':
      console.log(`linking: login denied (${answer.reason})`);
      api.access.deny(typeof answer.message === 'string' && answer.message !== '' ? answer.message : MESSAGE_DENIED);
      return;
    case 'confirm':
      sendToConfirm(event, api, secrets, answer.candidates);
      return;
  }
};

exports.onContinuePostLogin = async (event, api) => {
  const secrets = event.secrets || {};
  const user = event.user || {};
  let payload;
  try {
    payload = api.redirect.validateToken({ secret: secrets.LINKING_CONTINUE_SECRET, tokenParameterName: 'session_token' });
  } catch (err) {
    console.log(`linking: the token back from the consent page is not valid (${err && err.message}); login denied`);
    api.access.deny(MESSAGE_UNAVAILABLE);
    return;
  }
  // validateToken checks the signature, the expiry and the state, not whose
  // login the token is for.
  if (payload === null || typeof payload !== 'object' || payload.typ !== TOKEN_TYPE_CONTINUE ||
      typeof payload.sub !== 'string' || payload.sub !== user.user_id) {
    console.log('linking: the token back from the consent page is not for this login; login denied');
    api.access.deny(MESSAGE_UNAVAILABLE);
    return;
  }
  switch (payload.outcome) {
    case 'linked':
      if (!validUserId(payload.primary_user_id)) {
        break;
      }
      console.log(`linking: login ends as ${payload.primary_user_id} (confirmed)`);
      api.authentication.setPrimaryUser(payload.primary_user_id);
      return;
    case 'not_now':
      return;
    case 'declined':
      if (!Array.isArray(payload.declined)) {
        break;
      }
      rememberDeclined(user, api, payload.declined);
      return;
    case 'denied':
      console.log(`linking: login denied (${payload.reason})`);
      api.access.deny(typeof payload.message === 'string' && payload.message !== '' ? payload.message : MESSAGE_DENIED);
      return;
  }
  console.log('linking: the token back from the consent page has no usable outcome; login denied');
  api.access.deny(MESSAGE_UNAVAILABLE);
};

// canConfirm reports whether this login may be sent to the consent page: the
// confirm secrets are set and Auth0 can redirect it (not for prompt=none,
// refresh tokens or the password grant).
function canConfirm(secrets, api) {
  return Boolean(secrets.LINKING_CONFIRM_SECRET && secrets.LINKING_CONTINUE_SECRET) &&
    api.redirect !== undefined && typeof api.redirect.canRedirect === 'function' &&
    api.redirect.canRedirect() === true;
}

// sendToConfirm sends the person to the consent page with the accounts
// offered that they have not declined before.
function sendToConfirm(event, api, secrets, candidates) {
  const declined = declinedIds(event.user || {});
  const offer = candidates.filter((c) => !declined.includes(c.user_id));
  if (offer.length === 0) {
    console.log('linking: every account offered was declined before; login goes on');
    return;
  }
  const token = api.redirect.encodeToken({
    secret: secrets.LINKING_CONFIRM_SECRET,
    expiresInSeconds: CONFIRM_TOKEN_SECONDS,
    payload: { typ: TOKEN_TYPE_CONFIRM, login: buildRequest(event), candidates: offer },
  });
  console.log(`linking: asking to confirm one of ${offer.length} account(s)`);
  api.redirect.sendUserTo(new URL(CONFIRM_PATH, secrets.LINKING_URL).toString(), { query: { session_token: token } });
}

// declinedIds returns the user ids the person said are not theirs.
function declinedIds(user) {
  const marker = user.app_metadata && user.app_metadata[MARKER_KEY];
  return marker && Array.isArray(marker.declined) ? marker.declined.filter((id) => typeof id === 'string') : [];
}

// rememberDeclined adds ids to app_metadata.linking.declined, keeping the
// rest of the marker and the latest MAX_DECLINED ids.
function rememberDeclined(user, api, ids) {
  const marker = (user.app_metadata && user.app_metadata[MARKER_KEY]) || {};
  const declined = declinedIds(user);
  for (const id of ids) {
    if (validUserId(id) && !declined.includes(id)) {
      declined.push(id);
    }
  }
  console.log(`linking: ${ids.length} account(s) declined`);
  api.user.setAppMetadata(MARKER_KEY, { ...marker, declined: declined.slice(-MAX_DECLINED) });
}

function validUserId(id) {
  return typeof id === 'string' && id !== '' && id.length <= MAX_USER_ID_LENGTH;
}

// skipReason returns why the Action sends no request for this login, or ''.
function skipReason(event) {
  const user = event.user || {};
  const secrets = event.secrets || {};
  if (secrets.LINKING_CLIENT_ID && event.client && event.client.client_id === secrets.LINKING_CLIENT_ID) {
    return 'linking_client';
  }
  if (event.transaction && event.transaction.protocol === 'oauth2-refresh-token') {
    return 'refresh_token';
  }
  if (typeof user.email !== 'string' || user.email === '') {
    return 'email_missing';
  }
  if (user.email_verified !== true) {
    return 'email_unverified';
  }
  if (Array.isArray(user.identities) && user.identities.length > 1) {
    return 'linked_user';
  }
  const marker = user.app_metadata && user.app_metadata[MARKER_KEY];
  if (marker && marker.checked_email === user.email) {
    return 'already_checked';
  }
  return '';
}

// ask sends the signed request and returns the service's answer, checked.
// It throws when there is no usable answer.
// With confirm, the request says the Action accepts the "confirm" action.
async function ask(event, secrets, confirm) {
  const url = secrets.LINKING_URL;
  const secret = secrets.LINKING_SECRET;
  if (!url || !secret) {
    throw new Error('the secrets LINKING_URL and LINKING_SECRET must be set');
  }
  const req = buildRequest(event);
  if (confirm) {
    req.accept = ['confirm'];
  }
  const body = JSON.stringify(req);
  const timestamp = String(Math.floor(Date.now() / 1000));
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'X-Linking-Timestamp': timestamp,
      'X-Linking-Signature': sign(secret, timestamp, body),
    },
    body,
    redirect: 'error',
    signal: AbortSignal.timeout(timeoutMs(secrets.LINKING_TIMEOUT_MS)),
  });
  const text = await res.text();
  if (!res.ok) {
    throw new Error(`status ${res.status}${errorCode(text)}`);
  }
  return parseAnswer(text, confirm);
}

// sign returns the X-Linking-Signature header value for body sent at timestamp.
function sign(secret, timestamp, body) {
  return 'v1=' + createHmac('sha256', secret).update(timestamp + '.' + body).digest('hex');
}

// buildRequest returns the version 1 request for the login: the part of the
// event the rule needs, and nothing else.
function buildRequest(event) {
  const user = event.user || {};
  const connection = event.connection || {};
  const req = {
    version: SCHEMA_VERSION,
    user: {
      user_id: text(user.user_id),
      email: text(user.email),
      email_verified: user.email_verified === true,
      identities: Array.isArray(user.identities) ? user.identities.map(identity) : [],
    },
    connection: { name: text(connection.name), strategy: text(connection.strategy) },
  };
  if (typeof user.created_at === 'string' && user.created_at !== '') {
    // For a service whose selector prefers the oldest user.
    req.user.created_at = user.created_at;
  }
  if (event.transaction && event.transaction.id) {
    req.transaction_id = text(event.transaction.id);
  }
  return req;
}

function identity(id) {
  id = id || {};
  return {
    provider: text(id.provider),
    user_id: text(id.user_id !== undefined ? id.user_id : id.userId),
    connection: text(id.connection),
    isSocial: id.isSocial === true,
  };
}

function text(v) {
  return v === undefined || v === null ? '' : String(v);
}

function timeoutMs(raw) {
  const n = Number(raw);
  if (raw === undefined || raw === '' || !Number.isFinite(n) || n <= 0) {
    return DEFAULT_TIMEOUT_MS;
  }
  return Math.min(Math.floor(n) || 1, MAX_TIMEOUT_MS);
}

// parseAnswer returns the answer in text, or throws when it is not a version
// 1 answer this Action can apply (confirm only when it accepted it).
function parseAnswer(text, confirm) {
  let answer;
  try {
    answer = JSON.parse(text);
  } catch (err) {
    throw new Error('the answer is not JSON');
  }
  if (answer === null || typeof answer !== 'object' || answer.version !== SCHEMA_VERSION) {
    throw new Error('the answer is not a version 1 object');
  }
  switch (answer.action) {
    case 'set_primary_user':
      if (!validUserId(answer.primary_user_id)) {
        throw new Error('set_primary_user without a valid primary_user_id');
      }
      return answer;
    case 'confirm': {
      const cs = answer.candidates;
      if (!confirm) {
        throw new Error('confirm, which this request did not accept');
      }
      if (!Array.isArray(cs) || cs.length === 0 || cs.length > MAX_CANDIDATES ||
          !cs.every((c) => c !== null && typeof c === 'object' && validUserId(c.user_id))) {
        throw new Error('confirm without valid candidates');
      }
      return answer;
    }
    case 'none':
    case 'deny':
      return answer;
    default:
      throw new Error(`unknown action ${JSON.stringify(String(answer.action)).slice(0, 40)}`);
  }
}

// errorCode returns ": <code>" from an error body of the service, or ''.
function errorCode(text) {
  try {
    const body = JSON.parse(text);
    return body && typeof body.error === 'string' ? `: ${body.error.slice(0, 40)}` : '';
  } catch (err) {
    return '';
  }
}
