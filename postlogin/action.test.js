// Tests of action.js, the post-login Action, run with `node --test postlogin/`
// (Node 20 built-ins only). A local HTTP server plays the decision service and
// checks every request's signature as the Go Handler does; a recorded api
// object keeps every call the Action makes.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { createHmac, timingSafeEqual } = require('node:crypto');

const { onExecutePostLogin, onContinuePostLogin } = require('./action.js');

const SECRET = 'action-test-secret-0123456789abcdef0123456789';
const MAX_SKEW_SECONDS = 300;
const UNAVAILABLE = 'Sign-in is temporarily unavailable. Please try again in a moment.';
const AMBIGUOUS = 'We could not sign you in because more than one account uses this email address. Please contact support.';

// expectedSignature computes X-Linking-Signature as the Go side does (postlogin.Sign).
function expectedSignature(secret, timestamp, body) {
  return 'v1=' + createHmac('sha256', secret).update(Buffer.concat([Buffer.from(timestamp + '.'), body])).digest('hex');
}

// checkRequest returns '' when a request is signed, fresh and JSON, as the Go
// Handler requires, or what is wrong.
function checkRequest(req, body) {
  if (req.method !== 'POST') return 'method ' + req.method;
  if (!/^application\/json(;|$)/.test(req.headers['content-type'] || '')) return 'content type';
  const ts = req.headers['x-linking-timestamp'];
  const sig = req.headers['x-linking-signature'];
  if (!ts || !sig) return 'unsigned';
  const want = Buffer.from(expectedSignature(SECRET, ts, body));
  const got = Buffer.from(sig);
  if (got.length !== want.length || !timingSafeEqual(got, want)) return 'bad signature';
  if (!/^[0-9]+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > MAX_SKEW_SECONDS) return 'stale';
  return '';
}

// startService starts the fake decision service. answer(req) returns
// {status, body} (body: object or raw string), or null to never answer.
async function startService(t, answer) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const problem = checkRequest(req, raw);
      let json;
      try {
        json = JSON.parse(raw.toString('utf8'));
      } catch (err) {
        json = undefined;
      }
      const r = { url: req.url, headers: req.headers, raw, json, problem };
      requests.push(r);
      if (problem !== '') {
        reply(res, 401, { version: 1, error: 'unauthorized', message: problem });
        return;
      }
      const a = answer(r);
      if (a === null) return; // never answers
      reply(res, a.status || 200, a.body, a.headers);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return { url: `http://127.0.0.1:${server.address().port}/v1/post-login`, requests };
}

function reply(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(text);
}

// recordedApi returns an api object that records every method call made on
// it, whatever its path (api.access.deny, api.redirect.sendUserTo, ...).
function recordedApi() {
  const calls = [];
  const node = (path) =>
    new Proxy(function () {}, {
      get: (_, prop) => (typeof prop === 'symbol' || prop === 'then' ? undefined : node(path === '' ? prop : `${path}.${prop}`)),
      apply: (_, __, args) => {
        calls.push([path, ...args]);
      },
    });
  return { api: node(''), calls };
}

// loginEvent is a first passwordless login of jane@example.com.
function loginEvent(secrets, userChanges = {}) {
  return {
    secrets,
    user: {
      user_id: 'email|6f1c',
      email: 'jane@example.com',
      email_verified: true,
      identities: [{ provider: 'email', user_id: '6f1c', connection: 'email', isSocial: false }],
      app_metadata: {},
      user_metadata: {},
      ...userChanges,
    },
    connection: { id: 'con_2', name: 'email', strategy: 'email' },
    transaction: { id: 'tx_1', protocol: 'oidc-basic-profile' },
    client: { name: 'My App' },
  };
}

// run executes the Action for event and returns the recorded calls and the
// lines it logged.
async function run(event) {
  const { api, calls } = recordedApi();
  const logged = [];
  const log = console.log;
  console.log = (...args) => logged.push(args.join(' '));
  try {
    await onExecutePostLogin(event, api);
  } finally {
    console.log = log;
  }
  for (const line of logged) {
    assert.ok(!line.includes(SECRET), `a log line holds the secret: ${line}`);
  }
  return calls;
}

const ok = (body) => () => ({ status: 200, body: { version: 1, failed_open: false, remember: false, ...body } });

test('the test verifier computes the signature the Go side does', () => {
  // The same vector is checked against postlogin.Sign in Go.
  const got = expectedSignature('linking-test-vector-secret-0123456789abcdef', '1700000000', Buffer.from('{"version":1}'));
  assert.equal(got, 'v1=fb86b74b63f61b606800c7062484789701ff59372822ca92a067463d6db2d944');
});

test('set_primary_user: setPrimaryUser once, no metadata write', async (t) => {
  const svc = await startService(t, ok({ action: 'set_primary_user', primary_user_id: 'auth0|63d1', reason: 'linked' }));
  const calls = await run(loginEvent({ LINKING_URL: svc.url, LINKING_SECRET: SECRET }));
  assert.deepEqual(calls, [['authentication.setPrimaryUser', 'auth0|63d1']]);
  assert.equal(svc.requests.length, 1);
});

test('the request is signed and carries the version 1 schema', async (t) => {
  const svc = await startService(t, ok({ action: 'none', reason: 'no_candidate' }));
  // A GitHub login: its numeric user_id is sent as a string; profileData
  // and metadata stay out of the request.
  const event = loginEvent({ LINKING_URL: svc.url, LINKING_SECRET: SECRET }, {
    user_id: 'github|12345',
    identities: [
      { provider: 'github', user_id: 12345, connection: 'github', isSocial: true, profileData: { email: 'x@example.com' } },
    ],
    app_metadata: { roles: ['admin'] },
  });
  event.connection = { id: 'con_3', name: 'github', strategy: 'github' };
  await run(event);
  assert.equal(svc.requests.length, 1);
  const r = svc.requests[0];
  assert.equal(r.problem, '', 'the service refused the request');
  assert.match(r.headers['x-linking-signature'], /^v1=[0-9a-f]{64}$/);
  assert.deepEqual(r.json, {
    version: 1,
    user: {
      user_id: 'github|12345',
      email: 'jane@example.com',
      email_verified: true,
      identities: [
        { provider: 'github', user_id: '12345', connection: 'github', isSocial: true },
      ],
    },
    connection: { name: 'github', strategy: 'github' },
    transaction_id: 'tx_1',
  });
});

test('none with remember writes the marker', async (t) => {
  const svc = await startService(t, ok({ action: 'none', reason: 'no_candidate', remember: true }));
  const calls = await run(loginEvent({ LINKING_URL: svc.url, LINKING_SECRET: SECRET }));
  assert.deepEqual(calls, [['user.setAppMetadata', 'linking', { checked_email: 'jane@example.com' }]]);
});

test('none without remember writes nothing', async (t) => {
  const svc = await startService(t, ok({ action: 'none', reason: 'ambiguous' }));
  const calls = await run(loginEvent({ LINKING_URL: svc.url, LINKING_SECRET: SECRET }));
  assert.deepEqual(calls, []);
  assert.equal(svc.requests.length, 1);
});

test('deny calls api.access.deny with the message', async (t) => {
  const svc = await startService(t, ok({ action: 'deny', reason: 'ambiguous', message: AMBIGUOUS }));
  const calls = await run(loginEvent({ LINKING_URL: svc.url, LINKING_SECRET: SECRET }));
  assert.deepEqual(calls, [['access.deny', AMBIGUOUS]]);
});

test('skips: no request and no call', async (t) => {
  const cases = [
    ['marker for the same verified email', { app_metadata: { linking: { checked_email: 'jane@example.com' } } }, {}],
    ['unverified email', { email_verified: false }, {}],
    ['email_verified missing', { email_verified: undefined }, {}],
    ['no email', { email: undefined }, {}],
    ['empty email', { email: '' }, {}],
    ['refresh token exchange', {}, { transaction: { id: 'tx_2', protocol: 'oauth2-refresh-token' } }],
    ['a user holding several identities (a primary)', {
      user_id: 'auth0|63d1',
      identities: [
        { provider: 'auth0', user_id: '63d1', connection: 'Username-Password-Authentication', isSocial: false },
        { provider: 'email', user_id: '6f1c', connection: 'email', isSocial: false },
      ],
    }, {}],
  ];
  const svc = await startService(t, ok({ action: 'deny', reason: 'ambiguous', message: AMBIGUOUS }));
  for (const [name, userChanges, eventChanges] of cases) {
    await t.test(name, async () => {
      const before = svc.requests.length;
      const calls = await run({ ...loginEvent({ LINKING_URL: svc.url, LINKING_SECRET: SECRET }, userChanges), ...eventChanges });
      assert.equal(svc.requests.length - before, 0, 'requests sent');
      assert.deepEqual(calls, []);
    });
  }
});

test('checks again: a marker for another email, or for the email with other case', async (t) => {
  const cases = [
    ['another email', { checked_email: 'old@example.com' }],
    ['the email in other case', { checked_email: 'Jane@example.com' }],
    ['a marker without checked_email', { other: true }],
  ];
  const svc = await startService(t, ok({ action: 'set_primary_user', primary_user_id: 'auth0|63d1', reason: 'linked' }));
  for (const [name, marker] of cases) {
    await t.test(name, async () => {
      const before = svc.requests.length;
      const calls = await run(loginEvent({ LINKING_URL: svc.url, LINKING_SECRET: SECRET }, { app_metadata: { linking: marker } }));
      assert.equal(svc.requests.length - before, 1, 'requests sent');
      assert.deepEqual(calls, [['authentication.setPrimaryUser', 'auth0|63d1']]);
    });
  }
});

// Every way the service can fail to give a usable answer: denied when the
// Action fails closed (the default), nothing done when it fails open.
test('no usable answer: fail closed denies, fail open continues', async (t) => {
  const answers = [
    ['timeout', () => null],
    ['500', () => ({ status: 500, body: { version: 1, error: 'internal', message: 'x' } })],
    ['400', () => ({ status: 400, body: { version: 1, error: 'invalid_request', message: 'x' } })],
    // A redirect is not followed, even one that keeps the method and body.
    ['307 to an answer', (r) => r.url === '/v1/post-login'
      ? { status: 307, headers: { Location: '/elsewhere' }, body: '' }
      : { status: 200, body: { version: 1, action: 'set_primary_user', primary_user_id: 'auth0|63d1', reason: 'linked', failed_open: false, remember: false } }],
    ['malformed JSON', () => ({ status: 200, body: '{"version":1,"action":' })],
    ['not an object', () => ({ status: 200, body: '"none"' })],
    ['another version', ok({ version: 2, action: 'none', reason: 'no_candidate', remember: true })],
    ['unknown action', ok({ action: 'confirm', reason: 'linked' })],
    ['set_primary_user without id', ok({ action: 'set_primary_user', reason: 'linked' })],
    ['set_primary_user with a too long id', ok({ action: 'set_primary_user', primary_user_id: 'a'.repeat(129), reason: 'linked' })],
  ];
  for (const [name, answer] of answers) {
    for (const failOpen of [false, true]) {
      await t.test(`${name}, fail ${failOpen ? 'open' : 'closed'}`, async (t) => {
        const svc = await startService(t, answer);
        const secrets = { LINKING_URL: svc.url, LINKING_SECRET: SECRET, LINKING_TIMEOUT_MS: '200' };
        if (failOpen) secrets.LINKING_FAIL_OPEN = 'true';
        const calls = await run(loginEvent(secrets));
        assert.equal(svc.requests.length, 1, 'requests sent');
        assert.deepEqual(calls, failOpen ? [] : [['access.deny', UNAVAILABLE]]);
      });
    }
  }
});

test('network error and missing secrets: fail closed denies, fail open continues', async (t) => {
  // A port that was listening and is now closed refuses the connection.
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const closedURL = `http://127.0.0.1:${server.address().port}/v1/post-login`;
  await new Promise((resolve) => server.close(resolve));

  const cases = [
    ['connection refused', { LINKING_URL: closedURL, LINKING_SECRET: SECRET }],
    ['no LINKING_URL', { LINKING_SECRET: SECRET }],
    ['no LINKING_SECRET', { LINKING_URL: closedURL }],
    ['no secrets at all', undefined],
  ];
  for (const [name, secrets] of cases) {
    await t.test(`${name}, fail closed`, async () => {
      assert.deepEqual(await run(loginEvent(secrets)), [['access.deny', UNAVAILABLE]]);
    });
    await t.test(`${name}, fail open`, async () => {
      assert.deepEqual(await run(loginEvent({ ...secrets, LINKING_FAIL_OPEN: 'true' })), []);
    });
  }
});

test('LINKING_FAIL_OPEN other than "true" fails closed', async (t) => {
  const svc = await startService(t, () => ({ status: 503, body: '' }));
  for (const value of ['TRUE', '1', 'yes', '']) {
    await t.test(JSON.stringify(value), async () => {
      const calls = await run(loginEvent({ LINKING_URL: svc.url, LINKING_SECRET: SECRET, LINKING_FAIL_OPEN: value }));
      assert.deepEqual(calls, [['access.deny', UNAVAILABLE]]);
    });
  }
});

test('a deny without a message uses a generic one', async (t) => {
  const svc = await startService(t, ok({ action: 'deny', reason: 'invalid_login' }));
  const calls = await run(loginEvent({ LINKING_URL: svc.url, LINKING_SECRET: SECRET }));
  assert.deepEqual(calls, [['access.deny', 'We could not sign you in. Please contact support.']]);
});

test('a request signed with another secret is refused by the service, and the login denied', async (t) => {
  const svc = await startService(t, ok({ action: 'none', reason: 'no_candidate', remember: true }));
  const calls = await run(loginEvent({ LINKING_URL: svc.url, LINKING_SECRET: SECRET + 'x' }));
  assert.equal(svc.requests.length, 1);
  assert.equal(svc.requests[0].problem, 'bad signature');
  assert.deepEqual(calls, [['access.deny', UNAVAILABLE]]);
});

// Confirm before linking.

const CONFIRM_SECRET = 'action-test-confirm-secret-0123456789abcdef';
const CONTINUE_SECRET = 'action-test-continue-secret-0123456789abcdef';
const LINKING_CLIENT_ID = 'linking-client';

function b64url(s) {
  return Buffer.from(s).toString('base64url');
}

// hs256 makes a JWT of claims signed with secret, as encodeToken and the
// service do.
function hs256(secret, claims, header = { alg: 'HS256', typ: 'JWT' }) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function decodeJWT(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

// redirectApi returns an api object whose api.redirect answers as Auth0's
// does: canRedirect says canRedirect; encodeToken signs with its secret and
// sets iss, sub, iat, exp; validateToken checks the session_token of
// event.request.body as Auth0 does (HS256, signature, exp, state) and not
// its sub. Every call is recorded, the secrets included, for the test.
function redirectApi(event, { canRedirect = true, state = 'st' } = {}) {
  const calls = [];
  const rec = (name, fn) => (...args) => {
    calls.push([name, ...args]);
    return fn ? fn(...args) : undefined;
  };
  const api = {
    authentication: { setPrimaryUser: rec('authentication.setPrimaryUser') },
    access: { deny: rec('access.deny') },
    user: { setAppMetadata: rec('user.setAppMetadata'), setUserMetadata: rec('user.setUserMetadata') },
    redirect: {
      canRedirect: rec('redirect.canRedirect', () => canRedirect),
      sendUserTo: rec('redirect.sendUserTo'),
      encodeToken: rec('redirect.encodeToken', ({ secret, expiresInSeconds = 900, payload }) => {
        const iat = Math.floor(Date.now() / 1000);
        return hs256(secret, { ...payload, iss: 'tenant.example.com', sub: event.user.user_id, iat, exp: iat + expiresInSeconds });
      }),
      validateToken: rec('redirect.validateToken', ({ secret, tokenParameterName }) => {
        const token = ((event.request || {}).body || {})[tokenParameterName];
        if (typeof token !== 'string') throw new Error('no token');
        const [h, p, s] = token.split('.');
        const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
        if (header.alg !== 'HS256') throw new Error('alg');
        if (createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url') !== s) throw new Error('signature');
        const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
        if (!(claims.exp > Date.now() / 1000)) throw new Error('expired');
        if (claims.state !== state) throw new Error('state');
        return claims;
      }),
    },
  };
  return { api, calls };
}

function confirmSecrets(url, extra = {}) {
  return {
    LINKING_URL: url, LINKING_SECRET: SECRET, LINKING_CONFIRM_SECRET: CONFIRM_SECRET,
    LINKING_CONTINUE_SECRET: CONTINUE_SECRET, LINKING_CLIENT_ID: LINKING_CLIENT_ID, ...extra,
  };
}

const candidateA = {
  user_id: 'auth0|63d1', email: 'jane@example.com', email_verified: false, created_at: '2024-03-02T10:00:00Z',
  identities: [{ provider: 'auth0', user_id: '63d1', connection: 'Username-Password-Authentication', isSocial: false }],
};
const candidateB = { ...candidateA, user_id: 'auth0|77aa', identities: [{ ...candidateA.identities[0], user_id: '77aa' }] };

// quietly runs fn with console.log silenced.
async function quietly(fn) {
  const log = console.log;
  console.log = () => {};
  try {
    await fn();
  } finally {
    console.log = log;
  }
}

function runWith(event, api) {
  return quietly(() => onExecutePostLogin(event, api));
}

test('confirm: the request accepts it, and the person goes to the consent page with the offer', async (t) => {
  const svc = await startService(t, ok({ action: 'confirm', reason: 'confirm', candidates: [candidateA] }));
  const event = loginEvent(confirmSecrets(svc.url));
  const { api, calls } = redirectApi(event);
  await runWith(event, api);
  assert.equal(svc.requests.length, 1);
  assert.deepEqual(svc.requests[0].json.accept, ['confirm']);
  assert.deepEqual(calls.map((c) => c[0]), ['redirect.canRedirect', 'redirect.encodeToken', 'redirect.sendUserTo']);
  const [, opts] = calls[1];
  assert.equal(opts.secret, CONFIRM_SECRET);
  assert.equal(opts.expiresInSeconds, 120);
  const [, url, options] = calls[2];
  assert.equal(url, svc.url.replace('/v1/post-login', '/confirm'));
  const claims = decodeJWT(options.query.session_token);
  assert.equal(claims.typ, 'linking.confirm');
  assert.equal(claims.sub, 'email|6f1c');
  const { accept, ...login } = svc.requests[0].json;
  assert.deepEqual(claims.login, login);
  assert.deepEqual(claims.candidates, [candidateA]);
  assert.deepEqual(Object.keys(options.query), ['session_token']);
});

test('confirm: canRedirect false (prompt=none, refresh token, ROPG): not accepted, and a confirm answer is no usable answer', async (t) => {
  const svc = await startService(t, ok({ action: 'confirm', reason: 'confirm', candidates: [candidateA] }));
  const event = loginEvent(confirmSecrets(svc.url));
  const { api, calls } = redirectApi(event, { canRedirect: false });
  await runWith(event, api);
  assert.equal(svc.requests[0].json.accept, undefined);
  assert.deepEqual(calls.map((c) => c[0]), ['redirect.canRedirect', 'access.deny']);
  assert.equal(calls[1][1], UNAVAILABLE);
});

test('confirm: without the confirm secrets, canRedirect is not asked and confirm not accepted', async (t) => {
  const svc = await startService(t, ok({ action: 'none', reason: 'no_candidate' }));
  const event = loginEvent({ LINKING_URL: svc.url, LINKING_SECRET: SECRET, LINKING_CONFIRM_SECRET: CONFIRM_SECRET });
  const { api, calls } = redirectApi(event);
  await runWith(event, api);
  assert.equal(svc.requests[0].json.accept, undefined);
  assert.deepEqual(calls, []);
});

test('the linking client: its logins (the proofs) send no request and call nothing', async (t) => {
  const svc = await startService(t, ok({ action: 'confirm', reason: 'confirm', candidates: [candidateA] }));
  const event = loginEvent(confirmSecrets(svc.url));
  event.client = { client_id: LINKING_CLIENT_ID, name: 'Linking' };
  const { api, calls } = redirectApi(event);
  await runWith(event, api);
  assert.equal(svc.requests.length, 0);
  assert.deepEqual(calls, []);
});

test('confirm: accounts declined before are not offered again', async (t) => {
  const svc = await startService(t, ok({ action: 'confirm', reason: 'confirm', candidates: [candidateA, candidateB] }));
  const cases = [
    ['every account declined: the login goes on', ['auth0|63d1', 'auth0|77aa'], null],
    ['one declined: the other is offered', ['auth0|63d1'], [candidateB]],
    ['none declined', [], [candidateA, candidateB]],
  ];
  for (const [name, declined, offered] of cases) {
    await t.test(name, async () => {
      const event = loginEvent(confirmSecrets(svc.url), { app_metadata: { linking: { declined } } });
      const { api, calls } = redirectApi(event);
      await runWith(event, api);
      const sent = calls.filter((c) => c[0] === 'redirect.sendUserTo');
      if (offered === null) {
        assert.deepEqual(calls.map((c) => c[0]), ['redirect.canRedirect']);
      } else {
        assert.equal(sent.length, 1);
        assert.deepEqual(decodeJWT(sent[0][2].query.session_token).candidates, offered);
      }
    });
  }
});

test('confirm: an answer without valid candidates is no usable answer', async (t) => {
  const bad = [
    ['no candidates', undefined],
    ['empty', []],
    ['too many', [1, 2, 3, 4, 5, 6].map((i) => ({ ...candidateA, user_id: `auth0|${i}` }))],
    ['a candidate without user_id', [{ email: 'x' }]],
  ];
  for (const [name, candidates] of bad) {
    await t.test(name, async (t) => {
      const svc = await startService(t, ok({ action: 'confirm', reason: 'confirm', candidates }));
      const event = loginEvent(confirmSecrets(svc.url));
      const { api, calls } = redirectApi(event);
      await runWith(event, api);
      assert.deepEqual(calls.map((c) => c[0]), ['redirect.canRedirect', 'access.deny']);
    });
  }
});

// continueEvent is the event of onContinuePostLogin: the login's user, and
// the /continue request with the token in its form.
function continueEvent(token, userChanges = {}) {
  const event = loginEvent({ LINKING_CONTINUE_SECRET: CONTINUE_SECRET, LINKING_CONFIRM_SECRET: CONFIRM_SECRET }, userChanges);
  event.request = { method: 'POST', body: { state: 'st', session_token: token } };
  return event;
}

function returnToken(claims, secret = CONTINUE_SECRET) {
  const iat = Math.floor(Date.now() / 1000);
  return hs256(secret, { iss: 'https://linking.example.com', sub: 'email|6f1c', state: 'st', iat, exp: iat + 120, jti: 'j', typ: 'linking.continue', ...claims });
}

async function runContinue(event) {
  const { api, calls } = redirectApi(event);
  await quietly(() => onContinuePostLogin(event, api));
  return calls.filter((c) => c[0] !== 'redirect.validateToken');
}

test('onContinuePostLogin: validateToken with the continue secret, then the outcome', async (t) => {
  const linked = returnToken({ outcome: 'linked', primary_user_id: 'auth0|63d1' });
  await t.test('linked: setPrimaryUser once', async () => {
    const event = continueEvent(linked);
    const { api, calls } = redirectApi(event);
    await onContinuePostLogin(event, api);
    assert.deepEqual(calls[0], ['redirect.validateToken', { secret: CONTINUE_SECRET, tokenParameterName: 'session_token' }]);
    assert.deepEqual(calls.slice(1), [['authentication.setPrimaryUser', 'auth0|63d1']]);
  });
  const cases = [
    ['not_now: the login goes on, nothing remembered', returnToken({ outcome: 'not_now' }), {}, []],
    ['declined: remembered beside the marker', returnToken({ outcome: 'declined', declined: ['auth0|63d1', 'auth0|77aa'] }),
      { app_metadata: { linking: { checked_email: 'old@example.com', declined: ['auth0|63d1'] } } },
      [['user.setAppMetadata', 'linking', { checked_email: 'old@example.com', declined: ['auth0|63d1', 'auth0|77aa'] }]]],
    ['denied: the service\'s message', returnToken({ outcome: 'denied', message: UNAVAILABLE }), {}, [['access.deny', UNAVAILABLE]]],
    ['sub of another login', returnToken({ outcome: 'linked', primary_user_id: 'auth0|63d1', sub: 'email|other' }), {}, [['access.deny', UNAVAILABLE]]],
    ['no sub', returnToken({ outcome: 'linked', primary_user_id: 'auth0|63d1', sub: undefined }), {}, [['access.deny', UNAVAILABLE]]],
    ['a confirm token (typ of the other direction)', returnToken({ outcome: 'linked', primary_user_id: 'auth0|63d1', typ: 'linking.confirm' }), {}, [['access.deny', UNAVAILABLE]]],
    ['signed with the confirm secret', returnToken({ outcome: 'linked', primary_user_id: 'auth0|63d1' }, CONFIRM_SECRET), {}, [['access.deny', UNAVAILABLE]]],
    ['signed with LINKING_SECRET', returnToken({ outcome: 'linked', primary_user_id: 'auth0|63d1' }, SECRET), {}, [['access.deny', UNAVAILABLE]]],
    ['alg none', `${b64url('{"alg":"none"}')}.${b64url(JSON.stringify({ sub: 'email|6f1c', state: 'st', exp: 9e9, typ: 'linking.continue', outcome: 'linked', primary_user_id: 'auth0|63d1' }))}.`, {}, [['access.deny', UNAVAILABLE]]],
    ['another transaction\'s state', returnToken({ outcome: 'linked', primary_user_id: 'auth0|63d1', state: 'other' }), {}, [['access.deny', UNAVAILABLE]]],
    ['expired', returnToken({ outcome: 'linked', primary_user_id: 'auth0|63d1', exp: 1 }), {}, [['access.deny', UNAVAILABLE]]],
    ['linked without a primary', returnToken({ outcome: 'linked' }), {}, [['access.deny', UNAVAILABLE]]],
    ['declined without a list', returnToken({ outcome: 'declined' }), {}, [['access.deny', UNAVAILABLE]]],
    ['an unknown outcome', returnToken({ outcome: 'maybe' }), {}, [['access.deny', UNAVAILABLE]]],
  ];
  for (const [name, token, userChanges, want] of cases) {
    await t.test(name, async () => {
      assert.deepEqual(await runContinue(continueEvent(token, userChanges)), want);
    });
  }
  await t.test('no continue secret', async () => {
    const event = continueEvent(linked);
    delete event.secrets.LINKING_CONTINUE_SECRET;
    assert.deepEqual(await runContinue(event), [['access.deny', UNAVAILABLE]]);
  });
});
