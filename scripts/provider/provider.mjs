// The bundled OpenID provider for development and tests: npm's oidc-provider (OpenID Certified),
// serving two issuers, "Acme Corp" and "Globex", each with its own registered client for the
// app, its own demo users, and its own login and consent pages. Acme's client has a secret;
// Globex's authenticates with private_key_jwt and must push its authorization requests (PAR).
//
// With PROVIDER_PROFILE=fapi2, Globex is a FAPI 2.0 provider: oidc-provider's `fapi` 2.0
// profile, and beyond what that profile enforces by itself, PAR required, private_key_jwt,
// access tokens bound to the app's DPoP keys (`dpop_bound_access_tokens`), DPoP nonces
// required, and ID tokens signed with PS256. The app then needs OIDC_GLOBEX_DPOP=true.
//
// Environment (all optional):
//   PROVIDER_PORT       Acme's port (4000)
//   PROVIDER_ISSUER     Acme's issuer URL (http://127.0.0.1:$PROVIDER_PORT)
//   PROVIDER_GLOBEX_PORT  Globex's port ($PROVIDER_PORT + 1); its issuer is http://127.0.0.1:<port>
//   APP_URL             the app's public origin, for its redirect URIs (http://127.0.0.1:3000)
//   PROVIDER_KEYS_FILE  where Acme's signing keys are kept across restarts
//                       (target/dev-provider/jwks.json); Globex's sit beside it (globex-jwks.json)
//   PROVIDER_PROFILE    fapi2: Globex as a FAPI 2.0 provider (see above)
//   PROVIDER_ACCESS_TOKEN_TTL  access token lifetime in seconds (3600); short to watch renewals
//   PROVIDER_AUTO_SIGN_IN  an Acme demo user (alice) signed in without the login and consent pages,
//                      for the benchmark: the flow, its redirects and its tokens stay real.
//                      It also serves GET /bench/stats: time spent on the app's token and
//                      userinfo requests, and takes ${APP_URL}/profile as a redirect URI too
//                      (for the benchmark's axum-oidc peer).
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import Provider, { errors } from 'oidc-provider';

const port = Number(process.env.PROVIDER_PORT || 4000);
const globexPort = Number(process.env.PROVIDER_GLOBEX_PORT || port + 1);
const appUrl = (process.env.APP_URL || 'http://127.0.0.1:3000').replace(/\/$/, '');
const keysFile = process.env.PROVIDER_KEYS_FILE || 'target/dev-provider/jwks.json';
const accessTokenTtl = Number(process.env.PROVIDER_ACCESS_TOKEN_TTL || 3600);
const autoSignIn = process.env.PROVIDER_AUTO_SIGN_IN || '';
const profile = process.env.PROVIDER_PROFILE || '';
if (!['', 'fapi2'].includes(profile)) {
  console.error(`PROVIDER_PROFILE is "${profile}": it may be fapi2, or unset`);
  process.exit(2);
}
const fapi2 = profile === 'fapi2';
// The resource indicator (RFC 8707) of the app's own API: tokens asked for it are JWTs.
const API_RESOURCE = 'urn:leptos-oidc:api';

// Demo users: the README lists these credentials.
const ACME_USERS = {
  alice: {
    password: 'wonderland',
    claims: {
      name: 'Alice Liddell', given_name: 'Alice', family_name: 'Liddell',
      preferred_username: 'alice', email: 'alice@example.com', email_verified: true,
      locale: 'en-GB', zoneinfo: 'Europe/London',
    },
  },
  bob: {
    password: 'builder',
    claims: {
      name: 'Bob Builder', given_name: 'Bob', family_name: 'Builder',
      preferred_username: 'bob', email: 'bob@example.com', email_verified: false,
    },
  },
};

const GLOBEX_USERS = {
  carol: {
    password: 'chemistry',
    claims: {
      name: 'Carol Chen', given_name: 'Carol', family_name: 'Chen',
      preferred_username: 'carol', email: 'carol@globex.example', email_verified: true,
      groups: ['staff', 'admins'],
    },
  },
  dave: {
    password: 'diving',
    claims: {
      name: 'Dave Diaz', given_name: 'Dave', family_name: 'Diaz',
      preferred_username: 'dave', email: 'dave@globex.example', email_verified: true,
      groups: ['staff'],
    },
  },
};

// The two issuers, each as its own OpenID provider.
const TENANTS = [
  {
    name: 'Acme Corp', port, accent: '#3552c4',
    issuer: process.env.PROVIDER_ISSUER || `http://127.0.0.1:${port}`,
    client: { client_id: 'leptos-oidc-demo', client_secret: 'leptos-oidc-demo-secret' },
    users: ACME_USERS, keysFile, cookiePrefix: 'acme', autoSignIn,
  },
  {
    // High assurance: the app's client proves itself with private_key_jwt (its keys fetched
    // from the app's /.well-known/jwks.json), and every authorization request is pushed (PAR).
    name: 'Globex', port: globexPort, accent: '#0b6b50',
    issuer: `http://127.0.0.1:${globexPort}`,
    client: {
      client_id: 'leptos-oidc-globex',
      token_endpoint_auth_method: 'private_key_jwt',
      jwks_uri: `${appUrl}/.well-known/jwks.json`,
      ...(fapi2 ? { dpop_bound_access_tokens: true, id_token_signed_response_alg: 'PS256' } : {}),
    },
    requirePar: true, fapi2,
    users: GLOBEX_USERS, keysFile: join(dirname(keysFile), `globex-${basename(keysFile)}`),
    cookiePrefix: 'globex', autoSignIn: '',
  },
];

// Signing keys survive restarts, so a running app keeps verifying tokens after the provider restarts.
function signingKeys(keysFile) {
  try {
    return JSON.parse(readFileSync(keysFile, 'utf8'));
  } catch {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', kid: `dev-${Date.now()}` };
    const jwks = { keys: [jwk] };
    mkdirSync(dirname(keysFile), { recursive: true });
    writeFileSync(keysFile, JSON.stringify(jwks), { mode: 0o600 });
    return jwks;
  }
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(tenant, title, body) {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · ${esc(tenant.name)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;display:grid;place-items:center;min-height:100vh;margin:0}
main{background:#fff;padding:2rem 2.5rem;border-radius:12px;box-shadow:0 2px 12px #0002;width:min(26rem,90vw)}
h1{font-size:1.4rem;margin-top:0} label{display:block;margin:.8rem 0 .3rem;font-weight:600}
input{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #c5cad3;border-radius:6px;font-size:1rem}
button,.link{margin-top:1.2rem;padding:.6rem 1.2rem;border-radius:6px;border:0;font-size:1rem;cursor:pointer}
button{background:${tenant.accent};color:#fff} .link{background:none;color:${tenant.accent};text-decoration:underline}
.brand{font-weight:700;color:${tenant.accent};margin:0 0 1rem;font-size:1.1rem}
.error{color:#a11;background:#fdecec;padding:.5rem .8rem;border-radius:6px} small{color:#667}
</style></head><body><main><p class="brand">${esc(tenant.name)}</p>${body}</main></body></html>`;
}

function configuration(tenant) {
  const { client, users } = tenant;
  return {
    clients: [{
      client_name: 'Leptos OIDC demo',
      // In the benchmark's mode also /profile: axum-oidc, one of the benchmark's peers, takes
      // the provider's redirect back at the page it protects.
      redirect_uris: [`${appUrl}/authorization-code/callback`, ...(tenant.autoSignIn ? [`${appUrl}/profile`] : [])],
      post_logout_redirect_uris: [`${appUrl}/`],
      // Signing out here (or the session ending) tells the app, which ends its sessions too.
      backchannel_logout_uri: `${appUrl}/backchannel-logout`,
      backchannel_logout_session_required: true,
      // client_credentials: the app's tokens for its own API (/api/me), as a service gets them.
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      // The tenant's own: its client id, and its secret or how it authenticates instead.
      ...client,
    }, {
      // Another service, whose tokens the app's API does not take unless API_CLIENTS names it.
      client_id: `${client.client_id}-reports`,
      client_secret: `${client.client_id}-reports-secret`,
      client_name: 'Reports service',
      redirect_uris: [],
      response_types: [],
      grant_types: ['client_credentials'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      // `groups` (Globex's users have them) for the app's claim rules: OIDC_GLOBEX_REQUIRE_CLAIM.
      profile: ['name', 'given_name', 'family_name', 'preferred_username', 'locale', 'zoneinfo', 'groups'],
    },
    async findAccount(_ctx, sub) {
      const user = Object.hasOwn(users, sub) ? users[sub] : undefined;
      if (!user) return undefined;
      return { accountId: sub, async claims() { return { sub, ...user.claims }; } };
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // Both issuers live on one host (127.0.0.1), where cookies ignore the port: names of their own.
    cookies: {
      keys: [randomBytes(32).toString('base64url')],
      names: {
        session: `_${tenant.cookiePrefix}_session`,
        interaction: `_${tenant.cookiePrefix}_interaction`,
        resume: `_${tenant.cookiePrefix}_interaction_resume`,
      },
    },
    jwks: signingKeys(tenant.keysFile),
    pkce: { required: () => true },
    ttl: { AccessToken: accessTokenTtl },
    // oidc-provider refuses to call loopback and private addresses (against SSRF). This provider
    // is for development and tests, where the app's back-channel logout URI is on loopback.
    fetch(url, { dispatcher: _ssrfGuard, ...options }) {
      return globalThis.fetch(url, options);
    },
    // Refresh tokens for the app without `offline_access`: they live as long as the provider's
    // session, so signing out here stops renewals too.
    async issueRefreshToken(_ctx, registered) {
      return registered.grantTypeAllowed('refresh_token');
    },
    features: {
      devInteractions: { enabled: false },
      // The app's API takes tokens this provider vouches for: opaque ones through
      // introspection, and JWT access tokens (RFC 9068), issued for the resource
      // API_RESOURCE with the app's client id as their audience (the app's default API_AUDIENCE).
      introspection: {
        enabled: true,
        // Confidential clients may ask about any token (oidc-provider's default, made explicit).
        async allowedPolicy(ctx) {
          return ctx.oidc.client.clientAuthMethod !== 'none';
        },
      },
      clientCredentials: { enabled: true },
      // RFC 9126: Globex takes authorization requests only pushed, which its metadata says.
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: Boolean(tenant.requirePar) },
      // The app revokes a signed-out session's tokens (RFC 7009).
      revocation: { enabled: true },
      // FAPI 2.0 (PROVIDER_PROFILE=fapi2): PKCE and an assertion `aud` of the issuer, which the
      // profile enforces; DPoP proofs must carry this provider's nonces.
      fapi: { enabled: Boolean(tenant.fapi2), profile: '2.0' },
      dPoP: {
        enabled: true,
        ...(tenant.fapi2 ? { nonceSecret: randomBytes(32), requireNonce: () => true } : {}),
      },
      resourceIndicators: {
        enabled: true,
        async getResourceServerInfo(_ctx, resource) {
          if (resource !== API_RESOURCE) throw new errors.InvalidTarget();
          return { scope: 'api', audience: tenant.client.client_id, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
        },
      },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.body = page(tenant, 'Sign out', `<h1>Sign out of ${esc(tenant.name)}?</h1>${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button class="link" type="submit" form="op.logoutForm">No, stay signed in</button>`);
        },
        async postLogoutSuccessSource(ctx) {
          ctx.body = page(tenant, 'Signed out', '<h1>You are signed out</h1>');
        },
      },
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page(tenant, 'Error', `<h1>Something went wrong</h1><p class="error">${esc(out.error)}: ${esc(out.error_description || '')}</p>`);
    },
  };
}

async function readForm(req) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 10_000) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

function send(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

function loginPage(tenant, uid, client, error) {
  return page(tenant, 'Sign in', `<h1>Sign in</h1><p><small>to continue to ${esc(client?.clientName || client?.clientId)}</small></p>
${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
<label for="login">Username</label><input id="login" name="login" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" required>
<button type="submit">Sign in</button>
<a class="link" href="/interaction/${esc(uid)}/abort">Cancel</a>
</form>`);
}

function consentPage(tenant, uid, client, details) {
  const scopes = [...(details.missingOIDCScope || [])].filter((s) => s !== 'openid');
  return page(tenant, 'Allow access', `<h1>Allow access?</h1>
<p>${esc(client?.clientName || client?.clientId)} asks to read your ${scopes.length ? esc(scopes.join(', ')) : 'identity'}.</p>
<form method="post" action="/interaction/${esc(uid)}/confirm"><button type="submit">Allow</button>
<a class="link" href="/interaction/${esc(uid)}/abort">Deny</a></form>`);
}

// The grant for what the consent prompt asks.
async function grantFor(provider, details, prompt) {
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
  if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
  return grant.save();
}

async function interaction(tenant, provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return send(res, 400, page(tenant, 'Error', '<h1>Unknown sign-in request</h1>'));
  const client = await provider.Client.find(details.params.client_id);
  const { prompt } = details;
  const { users } = tenant;

  if (req.method === 'GET' && !action && tenant.autoSignIn) {
    if (prompt.name === 'login') {
      return provider.interactionFinished(req, res, { login: { accountId: tenant.autoSignIn } }, { mergeWithLastSubmission: false });
    }
    return provider.interactionFinished(req, res, { consent: { grantId: await grantFor(provider, details, prompt) } }, { mergeWithLastSubmission: true });
  }
  if (req.method === 'GET' && !action) {
    if (prompt.name === 'login') return send(res, 200, loginPage(tenant, uid, client));
    return send(res, 200, consentPage(tenant, uid, client, prompt.details));
  }
  if (req.method === 'GET' && action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    const login = form.get('login') || '';
    const user = Object.hasOwn(users, login) ? users[login] : undefined;
    if (!user || user.password !== form.get('password')) {
      return send(res, 401, loginPage(tenant, uid, client, 'Wrong username or password.'));
    }
    return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'confirm' && prompt.name === 'consent') {
    return provider.interactionFinished(req, res, { consent: { grantId: await grantFor(provider, details, prompt) } }, { mergeWithLastSubmission: true });
  }
  return send(res, 400, page(tenant, 'Error', '<h1>That step is not expected now</h1><p><a href="javascript:history.back()">Go back</a></p>'));
}

// Benchmark mode: how long the provider spends answering the app's own calls.
const stats = { token: { count: 0, ms: 0 }, userinfo: { count: 0, ms: 0 } };
function timed(kind, res) {
  const started = process.hrtime.bigint();
  res.on('finish', () => {
    stats[kind].count += 1;
    stats[kind].ms += Number(process.hrtime.bigint() - started) / 1e6;
  });
}

function start(tenant) {
  const provider = new Provider(tenant.issuer, configuration(tenant));
  provider.on('backchannel.error', (_ctx, err, registered) => {
    console.error(`${tenant.name}: back-channel logout to ${registered.clientId} failed: ${err.message}${err.cause ? ` (${err.cause.message || err.cause})` : ''}`);
  });
  const handleOidc = provider.callback();
  const bench = Boolean(tenant.autoSignIn);
  const server = createServer(async (req, res) => {
    const path = req.url.split('?')[0];
    if (bench && path === '/bench/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(stats));
    }
    if (bench && path === '/token') timed('token', res);
    if (bench && path === '/me') timed('userinfo', res);
    const match = /^\/interaction\/([\w-]+)(?:\/(login|confirm|abort))?$/.exec(path);
    if (!match) return handleOidc(req, res);
    try {
      await interaction(tenant, provider, req, res, match[1], match[2]);
    } catch (err) {
      // An expired or unknown interaction: say so instead of failing.
      send(res, 400, page(tenant, 'Error', `<h1>This sign-in has expired</h1><p class="error">${esc(err.message)}</p><p>Go back to the app and sign in again.</p>`));
    }
  });
  server.listen(tenant.port, '127.0.0.1', () => {
    const mode = tenant.fapi2 ? ', FAPI 2.0: PAR, private_key_jwt, DPoP with nonces' : '';
    console.log(`OpenID provider "${tenant.name}" ${tenant.issuer} ready (client ${tenant.client.client_id}, redirect ${appUrl}/authorization-code/callback${mode})`);
  });
  return server;
}

const servers = TENANTS.map(start);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    let open = servers.length;
    for (const server of servers) server.close(() => { open -= 1; if (!open) process.exit(0); });
  });
}
