// Cross-check of the Hub's Vercel Blob code with the official @vercel/blob package.
// Run by tests/it/blob.rs: reads one JSON request on stdin, prints one JSON answer.
//
// Request: {readWriteToken, otherReadWriteToken, hubToken, hubPayload, uploadHeaders,
//           pathname, otherPathname, bodyBase64}; VERCEL_BLOB_API_URL points at the local store.
// The Rust side asserts on every field of the answer.
'use strict';

const crypto = require('node:crypto');
const client = require('@vercel/blob/client');
const blob = require('@vercel/blob');

function readStdin() {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => (text += chunk));
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}

// What the Blob service does with a client token (the package signs with the same HMAC in
// generateClientTokenFromReadWriteToken): hex HMAC-SHA256 of the base64 payload, keyed by
// the store's read-write token.
function nodeHmacValid(clientToken, readWriteToken) {
  const encoded = clientToken.split('_')[4] || '';
  const [signature, payload] = Buffer.from(encoded, 'base64').toString().split('.');
  const expected = crypto.createHmac('sha256', readWriteToken).update(payload).digest('hex');
  return (
    typeof signature === 'string' &&
    signature.length === expected.length &&
    crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expected))
  );
}

async function outcome(promise) {
  try {
    const value = await promise;
    return { ok: true, value };
  } catch (e) {
    return { ok: false, error: e.constructor.name, message: String(e.message) };
  }
}

async function main() {
  const req = JSON.parse(await readStdin());
  const rw = req.readWriteToken;
  const out = {};

  // 1. The package parses the Hub's token and, for the same fields in the same order,
  //    signs exactly the same token.
  out.parsedHubPayload = client.getPayloadFromClientToken(req.hubToken);
  out.regeneratedHubToken = await client.generateClientTokenFromReadWriteToken({
    token: rw,
    ...req.hubPayload,
  });
  out.hubTokenHmacValid = nodeHmacValid(req.hubToken, rw);
  out.hubTokenHmacValidWithOtherSecret = nodeHmacValid(req.hubToken, req.otherReadWriteToken);

  // 2. Tokens the package generates, for the Hub to verify.
  out.packageTokens = {
    sameInputs: out.regeneratedHubToken,
    defaults: await client.generateClientTokenFromReadWriteToken({
      token: rw,
      pathname: req.pathname,
    }),
    everyOption: await client.generateClientTokenFromReadWriteToken({
      token: rw,
      pathname: req.pathname,
      onUploadCompleted: { callbackUrl: 'https://hub.example.com/callback', tokenPayload: 'x' },
      maximumSizeInBytes: 5 * 1024 * 1024,
      allowedContentTypes: ['image/*', 'application/octet-stream'],
      addRandomSuffix: false,
      allowOverwrite: false,
      cacheControlMaxAge: 3600,
      validUntil: Date.now() + 60_000,
    }),
    otherSecret: await client.generateClientTokenFromReadWriteToken({
      token: req.otherReadWriteToken,
      ...req.hubPayload,
    }),
  };

  // 3. The package's own client uploads with the Hub's token to the local store, which must
  //    take its requests; the package's head() reads the result back.
  const body = Buffer.from(req.bodyBase64, 'base64');
  const contentType = req.uploadHeaders['x-content-type'];
  out.otherPathnamePut = await outcome(
    client.put(req.otherPathname, body, { access: 'public', token: req.hubToken, contentType }),
  );
  out.put = await outcome(
    client.put(req.pathname, body, { access: 'public', token: req.hubToken, contentType }),
  );
  out.secondPut = await outcome(
    client.put(req.pathname, body, { access: 'public', token: req.hubToken, contentType }),
  );
  out.head = await outcome(blob.head(req.pathname, { token: rw }));
  out.headMissing = await outcome(blob.head(req.otherPathname, { token: rw }));
  out.list = await outcome(blob.list({ token: rw, limit: 10 }));

  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
