// run-action.js runs a post-login Action once, as Auth0 would, and prints
// what it asked of Auth0 (Node.js 20 built-ins only).
//
//   node run-action.js ACTION_FILE [EVENT_FILE]
//
// ACTION_FILE is the Action's code (it exports onExecutePostLogin). The
// event is read as JSON from EVENT_FILE, or from standard input without
// one. The Action runs with an api object that records its calls:
// api.authentication.setPrimaryUser, api.access.deny, api.user.setAppMetadata
// and api.user.setUserMetadata; any other api member is missing, as it
// would be for an Action that calls something Auth0 has not got. What it
// logs is collected instead of printed. The one line printed on standard
// output is
//
//   {"calls":[{"method":"authentication.setPrimaryUser","args":["auth0|63d1"]}],
//    "error":"<message, when the Action threw>","logs":["..."]}
//
// (the JSON of postlogintest.ActionRun). The exit status is 0 whenever the
// Action ran, even when it threw; 2 when the Action or the event could not be
// read.
// For an HTTPS service with a certificate of its own, run Node with
// NODE_EXTRA_CA_CERTS=ca.pem.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

function usage(message) {
  process.stderr.write(`run-action: ${message}\nusage: node run-action.js ACTION_FILE [EVENT_FILE]\n`);
  process.exit(2);
}

// recorder returns the api object and the list its calls go to. Every
// method returns api, so that calls can be chained, as Auth0's can.
function recorder() {
  const calls = [];
  const api = {};
  const method = (name) => (...args) => {
    // JSON.stringify turns undefined into null, in arrays.
    calls.push({ method: name, args: JSON.parse(JSON.stringify(args)) });
    return api;
  };
  api.authentication = { setPrimaryUser: method('authentication.setPrimaryUser') };
  api.access = { deny: method('access.deny') };
  api.user = {
    setAppMetadata: method('user.setAppMetadata'),
    setUserMetadata: method('user.setUserMetadata'),
  };
  return { api, calls };
}

async function main() {
  const [actionFile, eventFile] = process.argv.slice(2);
  if (!actionFile) {
    usage('no ACTION_FILE');
  }
  let action;
  let event;
  try {
    action = require(path.resolve(actionFile));
  } catch (err) {
    usage(`load ${actionFile}: ${err.message}`);
  }
  if (typeof action.onExecutePostLogin !== 'function') {
    usage(`${actionFile} exports no onExecutePostLogin`);
  }
  try {
    event = JSON.parse(fs.readFileSync(eventFile || 0, 'utf8'));
  } catch (err) {
    usage(`read the event: ${err.message}`);
  }

  const { api, calls } = recorder();
  const logs = [];
  const collect = (...args) => logs.push(args.map(String).join(' '));
  console.log = console.info = console.warn = console.error = collect;

  const out = { calls };
  try {
    await action.onExecutePostLogin(event, api);
  } catch (err) {
    out.error = (err && err.message) || String(err);
  }
  out.logs = logs;
  process.stdout.write(JSON.stringify(out) + '\n');
}

main();
