// The benchmark (README: "Performance"): the release app pinned to one core, the load tool and
// the bundled provider (in its non-interactive mode) to the other. Prints a table and writes
// it into README.md between the bench markers.
//
//   node scripts/bench/bench.mjs BUNDLE_DIR    (scripts/bench.sh builds the bundle and runs this)
//
// Settings: BENCH_SECONDS (5) per wrk run (each load scenario is run 3 times; the median run
// is reported, the machine being shared), BENCH_SIGNINS (1500) full sign-ins, BENCH_README=0
// to leave the README alone, BENCH_PEERS=1 to measure the peers too (`scripts/bench.sh peers`:
// the same scenarios against other relying parties, each on the app's core and address in
// turn; see peers.mjs), with a side-by-side table.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';

const bundle = resolve(process.argv[2] ?? 'target/bench');
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const RUNS = 3;
const signIns = Number(process.env.BENCH_SIGNINS ?? 1500);
const APP = 'http://127.0.0.1:3400';
const PROVIDER = 'http://127.0.0.1:4400';
const [appCore, loadCore] = cpus().length > 1 ? ['0', '1'] : ['0', '0'];
const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK']).stdout.toString().trim() || 100);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const work = mkdtempSync(join(tmpdir(), 'leptos-oidc-bench-'));
const children = [];
process.on('exit', () => {
  for (const child of children) child.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

function start(core, command, args, options) {
  const child = spawn('taskset', ['-c', core, command, ...args], { stdio: ['ignore', 'ignore', 'inherit'], ...options });
  children.push(child);
  return child;
}

async function waitFor(url, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url, { redirect: 'manual' })).status < 500) return;
    } catch { /* not up yet */ }
    if (Date.now() > until) throw new Error(`${url} did not answer`);
    await sleep(1);
  }
}

/** Resident memory (MiB) and CPU time (ms) of a process and its children (a peer's workers),
 * from /proc. */
function usage(pid) {
  const children = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ')[1] === String(pid);
    } catch { return false; } // gone meanwhile
  });
  let rssMiB = 0;
  let cpuMs = 0;
  for (const p of [pid, ...children]) {
    const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))[1];
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
    const cpuTicks = Number(stat[11]) + Number(stat[12]); // utime + stime
    rssMiB += Number(rss) / 1024;
    cpuMs += (cpuTicks * 1000) / TICKS_PER_SECOND;
  }
  return { rssMiB, cpuMs };
}

function toMs(text) {
  const [, n, unit] = /([\d.]+)(us|ms|s)/.exec(text);
  return Number(n) * { us: 0.001, ms: 1, s: 1000 }[unit];
}

/** What a browser's page load says it is, which mod_auth_openidc looks for before it sends a
 * visitor to sign in (a program gets a 401). Every wrk request says it. */
const NAVIGATION = { accept: 'text/html', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' };

/** wrk, pinned to the load core, 32 connections: requests per second, p50 and p99 in ms. */
function wrk(path, headers = [], duration = seconds) {
  const args = ['-c', loadCore, 'wrk', '-t1', '-c32', `-d${duration}s`, '--latency'];
  const navigation = Object.entries(NAVIGATION).map(([name, value]) => `${name}: ${value}`);
  for (const h of [...navigation, ...headers]) args.push('-H', h);
  const run = spawnSync('taskset', [...args, `${APP}${path}`], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`wrk failed: ${run.stderr}`);
  const out = run.stdout;
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) throw new Error(`${path}: ${non2xx[1]} error responses\n${out}`);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]),
    p50: toMs(/\s50%\s+(\S+)/.exec(out)[1]),
    p99: toMs(/\s99%\s+(\S+)/.exec(out)[1]),
  };
}

/** A browser's cookies, per origin; enough for this flow. */
class Jar {
  constructor() { this.byOrigin = new Map(); }
  header(url) {
    const cookies = this.byOrigin.get(new URL(url).origin) ?? new Map();
    return [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  store(url, response) {
    const origin = new URL(url).origin;
    const cookies = this.byOrigin.get(origin) ?? new Map();
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attributes] = line.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      if (attributes.some((a) => /^\s*max-age=0\s*$/i.test(a))) cookies.delete(name);
      else cookies.set(name, pair.slice(at + 1).trim());
    }
    this.byOrigin.set(origin, cookies);
  }
}

const agent = new http.Agent({ keepAlive: true });

/** A page load as a browser's navigation (node:http: fetch would say `Sec-Fetch-Mode: cors`,
 * on which mod_auth_openidc rightly does not start a sign-in). Over a kept-alive connection;
 * one the server has closed meanwhile is replaced once, as browsers do. */
function get(jar, url, again = true) {
  return new Promise((resolve, reject) => {
    const headers = { cookie: jar.header(url), ...NAVIGATION };
    http.get(url, { agent, headers }, (response) => {
      const answer = {
        status: response.statusCode,
        headers: {
          get: (name) => response.headers[name] ?? null,
          getSetCookie: () => response.headers['set-cookie'] ?? [],
        },
      };
      jar.store(url, answer);
      response.resume();
      response.on('end', () => resolve(answer));
    }).on('error', (e) => (again && e.code === 'ECONNRESET' ? resolve(get(jar, url, false)) : reject(e)));
  });
}

/** One whole sign-in as a new browser: `start` (/login), the provider's redirects, the
 * callback, which must send the browser to /profile. */
async function signIn(start = '/login') {
  const jar = new Jar();
  let response = await get(jar, `${APP}${start}`);
  let url = new URL(response.headers.get('location') ?? `/(${response.status})`, APP).href;
  while (!url.startsWith(APP)) {
    response = await get(jar, url);
    if (!response.headers.get('location')) throw new Error(`the provider stopped at ${url}: ${response.status}`);
    url = new URL(response.headers.get('location'), url).href;
  }
  const started = performance.now();
  response = await get(jar, url);
  const callbackMs = performance.now() - started;
  const landed = response.headers.get('location');
  if (!landed || new URL(landed, APP).pathname !== '/profile') throw new Error(`callback answered ${response.status} ${landed}`);
  return { callbackMs, cookie: jar.header(APP) };
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

function size(file) {
  const bytes = readFileSync(file);
  return { raw: bytes.length / 1024, gzip: gzipSync(bytes, { level: 9 }).length / 1024 };
}

// --- the run ---
const provider = start(loadCore, 'node', ['scripts/provider/provider.mjs'], {
  env: {
    ...process.env,
    PROVIDER_PORT: '4400',
    APP_URL: APP,
    PROVIDER_AUTO_SIGN_IN: 'alice',
    PROVIDER_KEYS_FILE: join(work, 'jwks.json'),
  },
});
await waitFor(`${PROVIDER}/.well-known/openid-configuration`);

/** The release app on `addr`, pinned to the app's core, with these stores. */
function startApp(addr, stores) {
  return start(appCore, './leptos-oidc', [], {
    cwd: bundle,
    env: {
      ...process.env,
      LEPTOS_SITE_ADDR: addr,
      LEPTOS_SITE_ROOT: 'site',
      OIDC_ISSUER: PROVIDER,
      OIDC_CLIENT_ID: 'leptos-oidc-demo',
      OIDC_CLIENT_SECRET: 'leptos-oidc-demo-secret',
      RUST_LOG: 'warn',
      ...stores,
    },
  });
}

const launched = performance.now();
const app = startApp('127.0.0.1:3400', { DATABASE_URL: `sqlite:${join(work, 'bench.db')}` });
await waitFor(`${APP}/`);
const startupMs = performance.now() - launched;
await waitFor(`${APP}/login`);
await sleep(1000);
const idle = usage(app.pid);

const rows = [];
const memory = [['idle', idle.rssMiB]];
/** wrk's median run of `path`, after a warm-up. */
function median(path, headers = []) {
  wrk(path, headers, 2); // warm-up
  const runs = Array.from({ length: RUNS }, () => wrk(path, headers)).sort((x, y) => x.rps - y.rps);
  return runs[Math.floor(RUNS / 2)];
}

function scenario(name, budgetRps, path, headers, measured = app, short = name.split(':')[0]) {
  const r = median(path, headers);
  rows.push({ name, ...r, budgetRps });
  memory.push([short, usage(measured.pid).rssMiB]);
  console.error(`${name}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms`);
}
scenario('a: GET / (public page)', 60_000, '/');
scenario('b: GET /login (a fresh state, nonce and PKCE each)', 30_000, '/login');
const { cookie } = await signIn();
scenario('c: GET /profile (signed in; sessions in SQLite)', 15_000, '/profile', [`Cookie: ${cookie}`]);

// d: full sign-ins, each by a new browser. First one at a time, for the callback's latency
// without queueing (the provider and this driver share a core); then 8 at a time, for the
// rate and the app's CPU time per sign-in.
for (let i = 0; i < 50; i++) await signIn(); // warm-up
const providerBefore = await (await fetch(`${PROVIDER}/bench/stats`)).json();
const callbacks = [];
const alone = Math.max(100, Math.floor(signIns / 5));
for (let i = 0; i < alone; i++) callbacks.push((await signIn()).callbackMs);
const providerAfter = await (await fetch(`${PROVIDER}/bench/stats`)).json();
const providerMs = (providerAfter.token.ms - providerBefore.token.ms
  + providerAfter.userinfo.ms - providerBefore.userinfo.ms) / alone;
callbacks.sort((x, y) => x - y);

/** `signIns` sign-ins, 8 new browsers at a time, starting at `start`: how many a second, and
 * the CPU time `measured` (and its children) spent on each. */
async function signInLoad(measured, start = '/login') {
  const cpuBefore = usage(measured.pid).cpuMs;
  const began = performance.now();
  let left = signIns;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (left-- > 0) await signIn(start);
  }));
  const elapsed = (performance.now() - began) / 1000;
  return { perSecond: signIns / elapsed, cpu: (usage(measured.pid).cpuMs - cpuBefore) / signIns };
}
const d = {
  ...(await signInLoad(app)),
  p50: percentile(callbacks, 50),
  p99: percentile(callbacks, 99),
  providerMs,
};
memory.push(['d', usage(app.pid).rssMiB]);
const exited = (child) => new Promise((done) => (child.exitCode !== null ? done() : child.once('exit', done)));
app.kill('SIGTERM');
await exited(app);

// c again, with the sessions in PostgreSQL and in Redis (scripts/test-servers.sh starts
// throwaway servers; without them, these rows are left out). Each its own app, alone on the core,
// at the same address (the one the provider knows).
const others = [
  ['PostgreSQL', { DATABASE_URL: process.env.TEST_POSTGRES_URL }],
  ['Redis', { DATABASE_URL: `sqlite:${join(work, 'bench-redis.db')}`, SESSION_STORE: 'redis', REDIS_URL: process.env.TEST_REDIS_URL }],
].filter(([, stores]) => Object.values(stores).every(Boolean));
for (const [store, stores] of others) {
  const other = startApp('127.0.0.1:3400', stores);
  await waitFor(`${APP}/`);
  const { cookie: signedIn } = await signIn();
  scenario(`c: GET /profile (signed in; sessions in ${store})`, 15_000, '/profile', [`Cookie: ${signedIn}`], other, `c (${store})`);
  other.kill('SIGTERM');
  await exited(other);
}

// b again, with pushed authorization requests (OIDC_PAR=always, RFC 9126): each sign-in start
// posts the request to the provider first, so this row runs at the provider's pace (no budget).
{
  const par = startApp('127.0.0.1:3400', { DATABASE_URL: `sqlite:${join(work, 'bench-par.db')}`, OIDC_PAR: 'always' });
  await waitFor(`${APP}/`);
  scenario('b: GET /login with PAR (a provider round trip each)', null, '/login', [], par, 'b (PAR)');
  par.kill('SIGTERM');
  await exited(par);
}

// The peers (BENCH_PEERS=1): the same scenarios against other relying parties, each alone on
// the app's core and address in turn, with the same provider; where a peer has no /login, its
// sign-in starts at /profile, as its users' do.
const peerResults = [];
if (process.env.BENCH_PEERS === '1') {
  const { peers } = await import('./peers.mjs');
  for (const peer of peers) {
    const child = peer.start({ start, core: appCore, work, app: APP, provider: PROVIDER });
    await waitFor(`${APP}/`);
    const a = median('/');
    const b = median(peer.login);
    const { cookie: signedIn } = await signIn(peer.login);
    const c = median('/profile', [`Cookie: ${signedIn}`]);
    for (let i = 0; i < 50; i++) await signIn(peer.login); // warm-up
    const load = await signInLoad(child, peer.login);
    const memoryMiB = usage(child.pid).rssMiB;
    peerResults.push({ ...peer, a, b, c, d: load, memoryMiB });
    console.error(`${peer.name}: a ${a.rps.toFixed(0)}/s, b ${b.rps.toFixed(0)}/s, c ${c.rps.toFixed(0)}/s, d ${load.cpu.toFixed(3)} ms, ${memoryMiB.toFixed(1)} MiB`);
    child.kill('SIGTERM');
    await exited(child);
  }
}

const pkg = join(bundle, 'site', 'pkg');
const wasm = size(join(pkg, readdirSync(pkg).find((f) => f.endsWith('.wasm'))));
const js = size(join(pkg, readdirSync(pkg).find((f) => f.endsWith('.js'))));

// --- the table ---
const f = (n, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const verdict = (ok) => (ok ? 'met' : '**missed**');
const lines = [
  '| scenario | measured | budget | |',
  '|---|---|---|---|',
  ...rows.map((r) => `| ${r.name} | ${f(r.rps)} req/s, p50 ${f(r.p50, 2)} ms, p99 ${f(r.p99, 2)} ms | ${r.budgetRps === null ? '| |' : `≥ ${f(r.budgetRps)} req/s, p99 ≤ 2 ms | ${verdict(r.rps >= r.budgetRps && r.p99 <= 2)} |`}`),
  `| d: full sign-ins through the provider | ${f(d.perSecond)} sign-ins/s (bound by the provider's core) | | |`,
  `| d: app CPU per sign-in | ${f(d.cpu, 3)} ms | ≤ 0.45 ms | ${verdict(d.cpu <= 0.45)} |`,
  `| d: callback request alone | p50 ${f(d.p50, 2)} ms, p99 ${f(d.p99, 2)} ms, of which the provider's token and userinfo answers ${f(d.providerMs, 2)} ms | adds ≤ 1 ms to the provider's time | ${verdict(d.p50 - d.providerMs <= 1)} (adds ${f(d.p50 - d.providerMs, 2)} ms at p50) |`,
  `| resident memory | ${memory.map(([n, m]) => `${n} ${f(m, 1)}`).join(', ')} MiB | < 64 MiB after every scenario | ${verdict(memory.every(([, m]) => m < 64))} |`,
  `| WASM (the islands) | ${f(wasm.raw, 1)} KiB, ${f(wasm.gzip, 1)} KiB gzip | ≤ 150 KB gzip | ${verdict(wasm.gzip * 1.024 <= 150)} |`,
  `| JS (loads the WASM) | ${f(js.raw, 1)} KiB, ${f(js.gzip, 1)} KiB gzip | | |`,
  `| start to first answered request | ${f(startupMs, 1)} ms | | |`,
];
const cpu = cpus()[0].model.replace(/\s+/g, ' ').trim();
const when = new Date().toISOString().slice(0, 10);
const stamp = `Measured by \`scripts/bench.sh\` on ${when}: ${cpu}, ${cpus().length} cores (the app on core ${appCore}; wrk, the provider and the sign-in driver on core ${loadCore}), release build, wrk with 1 thread and 32 connections, the median of ${RUNS} runs of ${seconds} s after a 2 s warm-up. Sign-ins: ${f(alone)} one at a time for the callback's latency, then ${f(signIns)} by 8 concurrent new browsers for the rate and the CPU time. Sessions in SQLite, except where a row names PostgreSQL or Redis (throwaway local servers from \`scripts/test-servers.sh\`).`;
const table = lines.join('\n');
console.log(`\n${stamp}\n\n${table}`);

// The side-by-side table: this app's rows of the run above, and each peer's.
let peerTable = '';
if (peerResults.length) {
  const ours = {
    a: rows[0], b: rows[1], c: rows[2], d, memoryMiB: Math.max(...memory.slice(0, 5).map(([, m]) => m)),
  };
  const rate = (r) => `${f(r.rps)}/s, p99 ${f(r.p99, 2)} ms`;
  const best = (pick, better) => peerResults.reduce((x, y) => (better(pick(y), pick(x)) ? y : x));
  const higher = (x, y) => x > y;
  const lower = (x, y) => x < y;
  const row = (label, pick, text, better, ratioText) => {
    const top = best(pick, better);
    return `| ${label} | ${text(ours)} | ${peerResults.map((p) => text(p)).join(' | ')} | ${top.short} | ${ratioText(pick(ours), pick(top))} |`;
  };
  const times = (x, y) => `${f(x / y, 2)}x`;
  const rateRow = (label, scenario) => row(label, (r) => r[scenario].rps, (r) => rate(r[scenario]), higher, (x, y) => `${times(x, y)} the rate`);
  peerTable = [
    `| scenario | this app | ${peerResults.map((p) => p.name).join(' | ')} | best peer | this app against it |`,
    `|---|---|${peerResults.map(() => '---').join('|')}|---|---|`,
    rateRow('a: GET / (public page)', 'a'),
    rateRow('b: starting a sign-in (`/login`, or `/profile` unauthenticated)', 'b'),
    rateRow('c: GET /profile, signed in', 'c'),
    row('d: app CPU per full sign-in', (r) => r.d.cpu, (r) => `${f(r.d.cpu, 3)} ms`, lower, (x, y) => `${times(x, y)} the CPU`),
    row('resident memory after the load', (r) => r.memoryMiB, (r) => `${f(r.memoryMiB, 1)} MiB`, lower, (x, y) => `${times(x, y)} the memory`),
  ].join('\n');
  console.log(`\n${peerTable}`);
}

if (process.env.BENCH_README !== '0') {
  const readme = readFileSync('README.md', 'utf8');
  let updated = readme.replace(/(<!-- bench:start -->\n)[\s\S]*?(<!-- bench:end -->)/, `$1${stamp}\n\n${table}\n$2`);
  if (peerTable) {
    const peersStamp = `Measured by \`scripts/bench.sh peers\` on ${when}, in the same run as the table above (same machine, provider, wrk and sign-in driver; each peer alone on the app's core). The peers, as configured:\n\n${peerResults.map((p) => `- **${p.name}**: ${p.configured}.`).join('\n')}`;
    updated = updated.replace(/(<!-- peers:start -->\n)[\s\S]*?(<!-- peers:end -->)/, `$1${peersStamp}\n\n${peerTable}\n$2`);
  }
  writeFileSync('README.md', updated);
  console.error('README.md: benchmark table updated');
}
process.exit(0);
