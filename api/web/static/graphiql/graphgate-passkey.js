// The browser's half of a passkey ceremony, knowing nothing of GraphQL: the options the server
// sends (WebAuthn's JSON form: base64url strings where the API takes bytes) go in, the
// credential's JSON form (`toJSON()`: RegistrationResponseJSON or AuthenticationResponseJSON)
// comes out, ready to be sent back as the `credential` variable.
(function () {
  'use strict';

  const MISSING =
    'this browser cannot use passkeys here (it needs WebAuthn with ' +
    'PublicKeyCredential.parseCreationOptionsFromJSON and toJSON, on https or localhost)';

  // A DOMException's name says what went wrong better than its message does.
  const HINTS = {
    NotAllowedError: 'cancelled, timed out, or no passkey for this site on this device',
    InvalidStateError: 'this authenticator already holds a passkey for this account',
    SecurityError: "the relying party id does not match this page's host (WEBAUTHN_RP_ID)",
    NotSupportedError: 'no authenticator here supports what the server asked for',
    EncodingError: "the server's options are not WebAuthn JSON",
  };

  function supported() {
    const api = window.PublicKeyCredential;
    return Boolean(
      window.isSecureContext &&
        api &&
        api.parseCreationOptionsFromJSON &&
        api.parseRequestOptionsFromJSON &&
        api.prototype.toJSON
    );
  }

  function json(options) {
    // The JSON scalar arrives parsed; a string or a { publicKey } wrapper is accepted too.
    const value = typeof options === 'string' ? JSON.parse(options) : options;
    return value && value.publicKey ? value.publicKey : value;
  }

  function ready() {
    // Browsers refuse WebAuthn on an IP address (127.0.0.1, the server's default host):
    // the same server answers on localhost, the development relying party.
    const host = window.location.hostname;
    if (/^[0-9.]+$/.test(host) || host.includes(':') || host.startsWith('[')) {
      const port = window.location.port ? `:${window.location.port}` : '';
      throw new Error(
        `passkeys need a domain name, not an IP address: open ` +
          `${window.location.protocol}//localhost${port}${window.location.pathname}`
      );
    }
    if (!supported()) throw new Error(MISSING);
  }

  /** Make a new passkey from startPasskeyRegistration's options; its JSON form. */
  async function create(options) {
    ready();
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(json(options));
    const credential = await navigator.credentials.create({ publicKey });
    return credential.toJSON();
  }

  /** Sign startPasskeySignIn's challenge with a passkey; the assertion's JSON form. */
  async function get(options) {
    ready();
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(json(options));
    const credential = await navigator.credentials.get({ publicKey });
    return credential.toJSON();
  }

  /** One line for the status bar from what create() or get() threw. */
  function explain(error) {
    const hint = HINTS[error && error.name];
    const text = (error && error.message) || String(error);
    return hint ? `${hint} (${error.name}: ${text})` : text;
  }

  window.GraphgatePasskey = { supported, create, get, explain };
})();
