// Tests of action.js, the post-login Action, run with `node --test postlogin/`
// (Node 20 built-ins only). A local HTTP server plays the decision service and
// checks every request's signature as the Go Handler does; a recorded api
// object keeps every call the Action makes.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { createHmac, timingSafeEqual } = require('node:crypto');

const { onExecutePostLogin } = require('./action.js');

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
