// From the workplace's shared/docs/scripts (written for this project); port from SIGV4_PORT.
// Minimal SigV4 (header auth) verifier: listens on 127.0.0.1:4569, recomputes the signature for each
// request from the SignedHeaders named in Authorization, replies 200 {"ok":true} or 403 SignatureDoesNotMatch.
// Reference for a test double; S3 rules: URI path not double-encoded, query sorted, payload hash = x-amz-content-sha256.
const PORT = Number(process.env.SIGV4_PORT || 4569);
const http = require('http'), crypto = require('crypto');
const SECRETS = { S3RVER: 'S3RVER', AKIDEXAMPLE: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const hmac = (k, s) => crypto.createHmac('sha256', k).update(s).digest();
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
const enc = (s) => encodeURIComponent(s).replace(/[!'()*]/g, c => '%' + c.charCodeAt(0).toString(16).toUpperCase());
http.createServer((req, res) => {
  const chunks = []; req.on('data', c => chunks.push(c)); req.on('end', () => {
    const body = Buffer.concat(chunks);
    const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(req.headers.authorization || '');
    if (!m) { res.writeHead(403); return res.end('no/invalid Authorization\n'); }
    const [, akid, day, region, service, signedHeaders, sig] = m;
    const u = new URL(req.url, 'http://x');
    const q = [...u.searchParams].map(([k, v]) => [enc(k), enc(v)]).sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : (a[1] < b[1] ? -1 : 1)).map(([k, v]) => k + '=' + v).join('&');
    const canonHeaders = signedHeaders.split(';').map(h => h + ':' + String(req.headers[h] ?? '').trim().replace(/\s+/g, ' ') + '\n').join('');
    const payloadHash = req.headers['x-amz-content-sha256'] || sha(body);
    const bodyHashOk = payloadHash === 'UNSIGNED-PAYLOAD' || payloadHash === sha(body);
    const creq = [req.method, u.pathname, q, canonHeaders, signedHeaders, payloadHash].join('\n');
    const scope = `${day}/${region}/${service}/aws4_request`;
    const sts = ['AWS4-HMAC-SHA256', req.headers['x-amz-date'], scope, sha(creq)].join('\n');
    const kSigning = hmac(hmac(hmac(hmac('AWS4' + (SECRETS[akid] || ''), day), region), service), 'aws4_request');
    const want = hmac(kSigning, sts).toString('hex');
    const ok = want === sig && bodyHashOk;
    res.writeHead(ok ? 200 : 403, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok, sigMatch: want === sig, bodyHashOk, signedHeaders, canonicalRequest: creq }) + '\n');
  });
}).listen(PORT, '127.0.0.1', () => console.log('sigv4 verifier on 127.0.0.1:' + PORT));
