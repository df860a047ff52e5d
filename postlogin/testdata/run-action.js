// run-action.js runs one execution of a post-login Action, as Auth0 would,
// and prints what it asked of Auth0 (Node.js 20 built-ins only).
//
//   node run-action.js ACTION_FILE [INPUT_FILE]
//
// ACTION_FILE is the Action's code (it exports onExecutePostLogin, and
// onContinuePostLogin when it redirects). The input is read as JSON from
// INPUT_FILE, or from standard input without one: either the JSON of
// postlogintest.ActionInput,
//
//   {"function":"onContinuePostLogin","event":{...},"can_redirect":true,"state":"..."}
//
// or an event alone, which runs onExecutePostLogin with can_redirect true.
//
// The Action runs with an api object that records its calls:
// api.authentication.setPrimaryUser, api.access.deny, api.user.setAppMetadata,
// api.user.setUserMetadata, and api.redirect: sendUserTo, canRedirect,
// encodeToken and validateToken. The last three work as Auth0's do, and their
// answer (or what they threw) is recorded with the call; the secret given to
// encodeToken and validateToken is left out of the record. Any other api
// member is missing, as it would be for an Action that calls something Auth0
// has not got. What the Action logs is collected instead of printed. The one
// line printed on standard output is
//
//   {"calls":[{"method":"authentication.setPrimaryUser","args":["auth0|63d1"]}],
//    "error":"<message, when the Action threw>","logs":["..."]}
//
// (the JSON of postlogintest.ActionRun). The exit status is 0 whenever the
// Action ran, even when it threw; 2 when the Action or the input could not be
// read, or the Action lacks the function to run.
//
// api.redirect.encodeToken({secret, expiresInSeconds = 900, payload}) returns
// an HS256 JWT signed with the UTF-8 bytes of secret, holding the payload's
// claims and, set by the runtime, iss (event.request.hostname, the tenant's
// bare domain, as Auth0's tokens have it), sub (event.user.user_id), iat and
// exp. api.redirect.validateToken({secret, tokenParameterName =
// 'session_token'}) reads the token from the /continue request's form
// (event.request.body) or query, and returns its claims only if its header
// says alg HS256 (nothing else, "none" included), its signature is right,
// its exp is a number in the future, and its state claim equals the
// transaction's state; it does not check sub. Otherwise it throws.
//
// For an HTTPS service with a certificate of its own, run Node with
// NODE_EXTRA_CA_CERTS=ca.pem.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { createHmac, timingSafeEqual } = require('node:crypto');

const DEFAULT_EXPIRES_IN_SECONDS = 900;
const DEFAULT_TOKEN_PARAMETER = 'session_token';
const FUNCTIONS = ['onExecutePostLogin', 'onContinuePostLogin'];

function usage(message) {
  process.stderr.write(`run-action: ${message}\nusage: node run-action.js ACTION_FILE [INPUT_FILE]\n`);
  process.exit(2);
}

// record turns a value into what the record holds: JSON, with undefined as
// null in arrays, as JSON.stringify does.
function record(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

// withoutSecret returns the options of encodeToken or validateToken without
// their secret, for the record.
function withoutSecret(options) {
  if (options === null || typeof options !== 'object') {
    return options;
  }
  const { secret, ...rest } = options;
  return rest;
}

function base64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

function hs256(secret, signingInput) {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(signingInput).digest();
}

function requireSecret(options, method) {
  if (!options || typeof options.secret !== 'string' || options.secret === '') {
    throw new Error(`api.redirect.${method}: options.secret must be a non-empty string`);
  }
  return options.secret;
}

// redirectAPI returns api.redirect's methods that answer, for one execution.
function redirectAPI(input) {
  const event = input.event || {};
  const now = () => Math.floor(Date.now() / 1000);

  const encodeToken = (options) => {
    const secret = requireSecret(options, 'encodeToken');
    const expiresIn = options.expiresInSeconds === undefined ? DEFAULT_EXPIRES_IN_SECONDS : options.expiresInSeconds;
    if (!Number.isFinite(expiresIn) || expiresIn <= 0) {
      throw new Error('api.redirect.encodeToken: options.expiresInSeconds must be a positive number');
    }
    const iat = now();
    const claims = { ...(options.payload || {}), sub: (event.user || {}).user_id, iat, exp: iat + Math.floor(expiresIn) };
    const hostname = (event.request || {}).hostname;
    if (hostname) {
      claims.iss = hostname;
    }
    const signingInput = `${base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${base64url(JSON.stringify(claims))}`;
    return `${signingInput}.${base64url(hs256(secret, signingInput))}`;
  };

  const invalid = (why) => new Error(`The session token is invalid: ${why}`);

  const validateToken = (options) => {
    const secret = requireSecret(options, 'validateToken');
    const name = options.tokenParameterName || DEFAULT_TOKEN_PARAMETER;
    const request = event.request || {};
    const token = (request.body || {})[name] || (request.query || {})[name];
    if (typeof token !== 'string' || token === '') {
      throw invalid(`no ${name} parameter in the /continue request`);
    }
    const parts = token.split('.');
    if (parts.length !== 3) {
      throw invalid('not a JWT');
    }
    let header;
    let claims;
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    } catch (err) {
      throw invalid('malformed JWT');
    }
    if (!header || header.alg !== 'HS256') {
      throw invalid(`alg ${JSON.stringify(header && header.alg)} is not HS256`);
    }
    const want = Buffer.from(base64url(hs256(secret, `${parts[0]}.${parts[1]}`)));
    const got = Buffer.from(parts[2]);
    if (got.length !== want.length || !timingSafeEqual(got, want)) {
      throw invalid('invalid signature');
    }
    if (!claims || typeof claims !== 'object') {
      throw invalid('the payload is not an object');
    }
    if (typeof claims.exp !== 'number' || claims.exp <= now()) {
      throw invalid('expired (or no exp)');
    }
    if (typeof input.state !== 'string' || input.state === '' || claims.state !== input.state) {
      throw invalid('State in the token does not match the /continue state.');
    }
    return claims;
  };

  return {
    canRedirect: () => input.can_redirect === true,
    encodeToken,
    validateToken,
  };
}

// recorder returns the api object and the list its calls go to. Methods that
// change the login return api, so that calls can be chained, as Auth0's can;
// methods that answer return their answer.
function recorder(input) {
  const calls = [];
  const api = {};
  const method = (name) => (...args) => {
    calls.push({ method: name, args: record(args) });
    return api;
  };
  const answering = (name, fn, recordArgs) => (...args) => {
    const call = { method: name, args: record(recordArgs(args)) };
    calls.push(call);
    try {
      const result = fn(...args);
      call.result = record(result);
      return result;
    } catch (err) {
      call.error = (err && err.message) || String(err);
      throw err;
    }
  };
  const redirect = redirectAPI(input);
  api.authentication = { setPrimaryUser: method('authentication.setPrimaryUser') };
  api.access = { deny: method('access.deny') };
  api.user = {
    setAppMetadata: method('user.setAppMetadata'),
    setUserMetadata: method('user.setUserMetadata'),
  };
  api.redirect = {
    sendUserTo: method('redirect.sendUserTo'),
    canRedirect: answering('redirect.canRedirect', redirect.canRedirect, (args) => args),
    encodeToken: answering('redirect.encodeToken', redirect.encodeToken, (args) => args.map(withoutSecret)),
    validateToken: answering('redirect.validateToken', redirect.validateToken, (args) => args.map(withoutSecret)),
  };
  return { api, calls };
}

// readInput returns the ActionInput in text; an event alone is the input of
// onExecutePostLogin in a login that can redirect.
function readInput(text) {
  const parsed = JSON.parse(text);
  if (parsed === null || typeof parsed !== 'object') {
    throw new Error('the input is not a JSON object');
  }
  if (typeof parsed.function !== 'string') {
    return { function: 'onExecutePostLogin', event: parsed, can_redirect: true };
  }
  if (!FUNCTIONS.includes(parsed.function)) {
    throw new Error(`unknown function ${JSON.stringify(parsed.function)}`);
  }
  return parsed;
}

async function main() {
  const [actionFile, inputFile] = process.argv.slice(2);
  if (!actionFile) {
    usage('no ACTION_FILE');
  }
  let action;
  let input;
  try {
    action = require(path.resolve(actionFile));
  } catch (err) {
    usage(`load ${actionFile}: ${err.message}`);
  }
  try {
    input = readInput(fs.readFileSync(inputFile || 0, 'utf8'));
  } catch (err) {
    usage(`read the input: ${err.message}`);
  }
  if (typeof action[input.function] !== 'function') {
    usage(`${actionFile} exports no ${input.function}`);
  }

  const { api, calls } = recorder(input);
  const logs = [];
  const collect = (...args) => logs.push(args.map(String).join(' '));
  console.log = console.info = console.warn = console.error = collect;

  const out = { calls };
  try {
    await action[input.function](input.event, api);
  } catch (err) {
    out.error = (err && err.message) || String(err);
  }
  out.logs = logs;
  process.stdout.write(JSON.stringify(out) + '\n');
}

main();
