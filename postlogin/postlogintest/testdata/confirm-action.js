// confirm-action.js is a post-login Action with the shape of "confirm before
// linking", for the tests of the pipeline emulator: it sends the person to
// CONFIRM_URL with a token it encodes, and on their return validates the
// token that comes back, checks that it is for this login's user (Auth0 does
// not), and ends the login as the user the token names.
//
// Secrets: SECRET (shared with the confirming site), CONFIRM_URL, CANDIDATE
// (put in the outgoing token), PROOF_CLIENT_ID (logins of that client are
// left alone), TOKEN_PARAMETER (optional; validateToken's
// tokenParameterName).
'use strict';

exports.onExecutePostLogin = async (event, api) => {
  if (event.client.client_id === event.secrets.PROOF_CLIENT_ID) {
    return;
  }
  if (!api.redirect.canRedirect()) {
    return;
  }
  const token = api.redirect.encodeToken({
    secret: event.secrets.SECRET,
    expiresInSeconds: 60,
    payload: { candidate: event.secrets.CANDIDATE },
  });
  api.redirect.sendUserTo(event.secrets.CONFIRM_URL, { query: { session_token: token } });
};

exports.onContinuePostLogin = async (event, api) => {
  const payload = api.redirect.validateToken({
    secret: event.secrets.SECRET,
    tokenParameterName: event.secrets.TOKEN_PARAMETER || undefined,
  });
  if (payload.sub !== event.user.user_id) {
    api.access.deny('the confirmation is for another login');
    return;
  }
  api.authentication.setPrimaryUser(payload.primary_user_id);
};
