// A loopback OpenID Connect provider for the sign-in tests (tests/it/signin/oidc_provider.rs):
// the certified `oidc-provider` package (pinned in package-lock.json), set up like a Microsoft
// Entra multi-tenant authority. One Provider per tenant, its issuer
// `http://127.0.0.1:<port>/<tenant>/v2.0` (as Entra's `https://login.microsoftonline.com/<tid>/v2.0`)
// and every endpoint of it under that prefix, each tenant with its own RS256 key.
//
// Environment: PORT (0 = any free port), TENANTS (comma-separated tenant ids), CLIENT_ID,
// CLIENT_SECRET, REDIRECT_URIS (comma-separated): one confidential client per tenant
// (client_secret_basic, authorization code with PKCE S256 only, scopes openid email profile).
//
// Prints exactly one line on stdout, `{"port": <n>}`, once every tenant is ready, then runs
// until killed (SIGTERM/SIGINT exit 0). Every request is logged on stderr as
// `<METHOD> <path> <status>`, with the provider's own errors and the control actions.
//
// No page for people: a sign-in is completed at once, on the interaction route, as the "next
// user" a test set for the tenant (POST /_control/next-user), login and consent of
// `openid email profile` together; every authorization request signs that user in again (no
// single sign-on from an earlier flow; prompt=select_account is accepted, as Entra does).
// POST /_control/tamper makes the next token response of a tenant carry a doctored id_token
// (see TAMPER_MODES).

import * as http from 'node:http';
import { randomBytes } from 'node:crypto';

// oidc-provider prints notices with console.info; stdout carries only the port line.
console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);

const { default: Provider, interactionPolicy } = await import('oidc-provider');
const {
  CompactSign, calculateJwkThumbprint, exportJWK, generateKeyPair,
} = await import('jose');

const SCOPES = ['openid', 'email', 'profile'];
const TAMPER_MODES = new Set([
  'none', // back to normal
  'other_tenant', // iss and tid of another configured tenant, signed with this tenant's key
  'other_tenant_key', // claims unchanged, signed with another tenant's key (and its kid)
  'issuer', // iss https://evil.example/<tid>/v2.0, signed with this tenant's key
  'audience', // aud someone-else, signed with this tenant's key
  'expired', // iat now-7200, exp now-3600, signed with this tenant's key
  'alg_none', // header {"alg":"none","typ":"JWT"}, payload unchanged, empty signature
  'unsigned', // the original header and payload, the signature removed
  'bad_signature', // the original token with bytes of its signature altered
  'foreign_key', // signed with a fresh RSA key in no JWKS, under this tenant's kid
  'replay', // the id_token of the previous successful token response of this tenant
]);

function env(name) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    console.error(`server.mjs: the environment variable ${name} is required`);
    process.exit(2);
  }
  return value;
}

const list = (value) => value.split(',').map((s) => s.trim()).filter(Boolean);
const PORT = Number(process.env.PORT || '0');
const TENANTS = list(env('TENANTS'));
const CLIENT_ID = env('CLIENT_ID');
const CLIENT_SECRET = env('CLIENT_SECRET');
const REDIRECT_URIS = list(env('REDIRECT_URIS'));

for (const tenant of TENANTS) {
  if (!/^[A-Za-z0-9-]+$/.test(tenant)) {
    console.error(`server.mjs: tenant id ${JSON.stringify(tenant)} is not a GUID-like id`);
    process.exit(2);
  }
}

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

const b64json = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** @type {Map<string, Tenant>} */
const tenants = new Map();

/**
 * @typedef {object} Tenant
 * @property {string} id
 * @property {string} prefix the path every endpoint of the tenant lives under: /<id>/v2.0
 * @property {string} issuer
 * @property {any} provider
 * @property {(req: any, res: any) => void} callback
 * @property {CryptoKey} privateKey
 * @property {string} kid
 * @property {object | undefined} nextUser
 * @property {Map<string, object>} accounts every user ever set, by sub
 * @property {string} tamper the mode for the next token response
 * @property {string | undefined} lastIdToken the id_token of the last successful token response, as issued
 */

async function rsaKey() {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { privateKey, jwk: { ...jwk, kid, alg: 'RS256', use: 'sig' }, kid };
}

async function sign(payload, header, key) {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader(header)
    .sign(key);
}

/** The id_token `token` replaced as `mode` says, for tenant `t`. */
async function tamper(t, mode, token) {
  const [h, p, s] = token.split('.');
  const header = b64json(h);
  const payload = b64json(p);
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'other_tenant': {
      const other = [...tenants.values()].find((o) => o.id !== t.id);
      return sign({ ...payload, iss: other.issuer, tid: other.id }, header, t.privateKey);
    }
    case 'other_tenant_key': {
      const other = [...tenants.values()].find((o) => o.id !== t.id);
      return sign(payload, { ...header, kid: other.kid }, other.privateKey);
    }
    case 'issuer':
      return sign({ ...payload, iss: `https://evil.example/${t.id}/v2.0` }, header, t.privateKey);
    case 'audience':
      return sign({ ...payload, aud: 'someone-else' }, header, t.privateKey);
    case 'expired':
      return sign({ ...payload, iat: now - 7200, exp: now - 3600 }, header, t.privateKey);
    case 'alg_none':
      return `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`;
    case 'unsigned':
      return `${h}.${p}.`;
    case 'bad_signature': {
      const bytes = Buffer.from(s, 'base64url');
      bytes[0] ^= 0x01;
      bytes[bytes.length >> 1] ^= 0x80;
      return `${h}.${p}.${bytes.toString('base64url')}`;
    }
    case 'foreign_key': {
      const { privateKey } = await rsaKey();
      return sign(payload, { ...header, kid: t.kid }, privateKey);
    }
    case 'replay':
      return t.lastIdToken;
    default:
      throw new Error(`unknown tamper mode ${mode}`);
  }
}

async function makeTenant(id, port) {
  const prefix = `/${id}/v2.0`;
  const issuer = `http://127.0.0.1:${port}${prefix}`;
  const { privateKey, jwk, kid } = await rsaKey();
  /** @type {Tenant} */
  const t = {
    id,
    prefix,
    issuer,
    privateKey,
    kid,
    nextUser: undefined,
    accounts: new Map(),
    tamper: 'none',
    lastIdToken: undefined,
  };

  // Every authorization request signs the next user in again, even when the browser still has
  // a session: resolved only by the result of this request's own interaction.
  const policy = interactionPolicy.base();
  policy.get('login').checks.add(new interactionPolicy.Check(
    'every_sign_in',
    'each authorization request signs the next user in',
    (ctx) => (ctx.oidc.result?.login
      ? interactionPolicy.Check.NO_NEED_TO_PROMPT
      : interactionPolicy.Check.REQUEST_PROMPT),
  ));

  // Entra accepts prompt=select_account (a relying party may send it to let people pick
  // another account): a prompt the interaction resolves like the others.
  policy.add(new interactionPolicy.Prompt({ name: 'select_account', requestable: true }), 0);

  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: REDIRECT_URIS,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    }],
    jwks: { keys: [jwk] },
    scopes: SCOPES,
    // Entra's claims; tid, oid and groups come with openid, as Entra sends them in every
    // id_token.
    claims: {
      openid: ['sub', 'tid', 'oid', 'groups'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    // The claims of the granted scopes in the id_token itself (not only from userinfo).
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    pkce: { required: () => true },
    clientAuthMethods: ['client_secret_basic'],
    enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
    features: {
      devInteractions: { enabled: false },
    },
    interactions: {
      policy,
      url: (ctx, interaction) => `${prefix}/interaction/${interaction.uid}`,
    },
    // Codes and tokens outlive the session: it is dropped after each sign-in (below).
    expiresWithSession: () => false,
    cookies: {
      keys: [randomBytes(32).toString('base64url')],
      names: {
        session: `_session_${id}`,
        interaction: `_interaction_${id}`,
        resume: `_interaction_resume_${id}`,
      },
    },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 120,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    clientBasedCORS: () => false,
    async findAccount(ctx, sub) {
      const user = t.accounts.get(sub);
      if (!user) {
        return undefined;
      }
      return {
        accountId: sub,
        async claims() {
          const claims = { sub, tid: id };
          if (user.email != null) claims.email = user.email;
          if (user.emailVerified != null) claims.email_verified = user.emailVerified;
          if (user.name != null) claims.name = user.name;
          if (user.oid != null) claims.oid = user.oid;
          if (user.groups != null) claims.groups = user.groups;
          return claims;
        },
      };
    },
  });

  for (const event of ['server_error', 'authorization.error', 'grant.error', 'userinfo.error']) {
    provider.on(event, (ctx, err) => {
      const detail = err.error_description ? ` (${err.error_description})` : '';
      const cause = err.cause ? ` cause: ${err.cause.message}` : '';
      console.error(`[${id}] ${event}: ${err.message}${detail}${cause}`);
    });
  }

  provider.use(async (ctx, next) => {
    await next();
    const route = ctx.oidc?.route;

    // A finished sign-in drops the session, so the next authorization request starts afresh
    // (no "session principal changed" logout page when the next user changed meanwhile).
    if (route === 'resume' && ctx.status >= 300 && ctx.status < 400) {
      const location = ctx.response.get('location') || '';
      if (!location.includes(`${prefix}/interaction/`) && ctx.oidc.session?.id) {
        await ctx.oidc.session.destroy();
      }
    }

    if (route === 'token' && ctx.status === 200 && ctx.body?.id_token) {
      const issued = ctx.body.id_token;
      const mode = t.tamper;
      t.tamper = 'none';
      if (mode !== 'none') {
        ctx.body = { ...ctx.body, id_token: await tamper(t, mode, issued) };
        console.error(`[${id}] tamper: this token response carries a '${mode}' id_token`);
      }
      t.lastIdToken = issued;
    }
  });

  t.provider = provider;
  t.callback = provider.callback();
  return t;
}

function send(res, status, body) {
  if (body === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  const text = typeof body === 'string' ? `${body}\n` : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
  });
  res.end(text);
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

async function control(req, res, pathname) {
  if (pathname === '/_control/health' && req.method === 'GET') {
    send(res, 200, { ok: true, tenants: [...tenants.keys()] });
    return;
  }
  if (req.method !== 'POST') {
    send(res, 404, `no control route ${req.method} ${pathname}`);
    return;
  }
  let body;
  try {
    body = await readJson(req);
  } catch (err) {
    send(res, 400, `the body is not JSON: ${err.message}`);
    return;
  }
  const t = tenants.get(body.tenant);
  if (!t) {
    send(res, 404, `unknown tenant ${JSON.stringify(body.tenant)}; configured: ${[...tenants.keys()].join(', ')}`);
    return;
  }
  switch (pathname) {
    case '/_control/next-user': {
      if (typeof body.sub !== 'string' || !body.sub) {
        send(res, 400, 'next-user needs a non-empty "sub"');
        return;
      }
      const user = {
        email: body.email,
        emailVerified: body.emailVerified,
        name: body.name,
        oid: body.oid,
        groups: body.groups,
      };
      t.accounts.set(body.sub, user);
      t.nextUser = body.sub;
      console.error(`[${t.id}] next user: ${body.sub} ${body.email ?? ''}`);
      send(res, 204);
      return;
    }
    case '/_control/tamper': {
      if (!TAMPER_MODES.has(body.mode)) {
        send(res, 400, `unknown tamper mode ${JSON.stringify(body.mode)}; known: ${[...TAMPER_MODES].join(', ')}`);
        return;
      }
      if (body.mode === 'replay' && !t.lastIdToken) {
        send(res, 409, `tenant ${t.id} issued no id_token yet: nothing to replay`);
        return;
      }
      if (['other_tenant', 'other_tenant_key'].includes(body.mode) && tenants.size < 2) {
        send(res, 409, `${body.mode} needs a second configured tenant`);
        return;
      }
      t.tamper = body.mode;
      console.error(`[${t.id}] tamper armed: ${body.mode}`);
      send(res, 204);
      return;
    }
    default:
      send(res, 404, `no control route POST ${pathname}`);
  }
}

/** The interaction route: the sign-in of the tenant's next user, without a page. */
async function interaction(t, req, res) {
  if (!t.nextUser) {
    send(res, 500, `no next user is set for tenant ${t.id}: POST /_control/next-user first`);
    return;
  }
  const sub = t.nextUser;
  let details;
  try {
    details = await t.provider.interactionDetails(req, res);
  } catch (err) {
    send(res, 400, `interaction: ${err.message}`);
    return;
  }
  const grant = new t.provider.Grant({ accountId: sub, clientId: details.params.client_id });
  grant.addOIDCScope(SCOPES.join(' '));
  const grantId = await grant.save();
  console.error(`[${t.id}] interaction ${details.uid} (${details.prompt.name}): signed in ${sub}`);
  await t.provider.interactionFinished(
    req,
    res,
    { select_account: {}, login: { accountId: sub }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

let ready = false;

const server = http.createServer((req, res) => {
  const { pathname } = new URL(req.url, 'http://127.0.0.1');
  res.on('finish', () => {
    console.error(`${req.method} ${pathname} ${res.statusCode}`);
  });
  const fail = (err) => {
    console.error(`error on ${req.method} ${pathname}: ${err.stack || err}`);
    if (!res.headersSent) send(res, 500, `server.mjs: ${err.message}`);
    else res.destroy();
  };
  try {
    if (!ready) {
      send(res, 503, 'starting');
      return;
    }
    if (pathname.startsWith('/_control/')) {
      control(req, res, pathname).catch(fail);
      return;
    }
    for (const t of tenants.values()) {
      if (pathname === t.prefix || pathname.startsWith(`${t.prefix}/`)) {
        if (pathname.startsWith(`${t.prefix}/interaction/`) && req.method === 'GET') {
          interaction(t, req, res).catch(fail);
          return;
        }
        // Mounted under the prefix as express would mount it: the provider sees the path
        // below the prefix in req.url, and the whole one in req.originalUrl (from which it
        // builds its endpoint URLs).
        req.originalUrl = req.url;
        req.url = req.url.slice(t.prefix.length) || '/';
        if (req.url.startsWith('?')) req.url = `/${req.url}`;
        t.callback(req, res);
        return;
      }
    }
    send(res, 404, `no tenant serves ${pathname}; configured: ${[...tenants.keys()].join(', ')}`);
  } catch (err) {
    fail(err);
  }
});

server.listen(PORT, '127.0.0.1', async () => {
  const { port } = server.address();
  try {
    for (const id of TENANTS) {
      tenants.set(id, await makeTenant(id, port));
    }
  } catch (err) {
    console.error(`server.mjs: cannot start: ${err.stack || err}`);
    process.exit(1);
  }
  ready = true;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});
