// The benchmark's peers (`scripts/bench.sh peers`): other relying parties signing in at the same
// bundled provider, each written as its users would from its own documentation (the files in
// peers/), built by peers/build.sh into target/peers, and started here pinned to the app's
// core at the app's address, whose callback the provider knows. `configured` says how.
import { chmodSync, cpSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';

const built = resolve('target/peers');
const CLIENT = { id: 'leptos-oidc-demo', secret: 'leptos-oidc-demo-secret' };

/** Runs `command` pinned to `core`, with the provider and client in its environment. */
function run({ start, core, app, provider }, command, args, env = {}) {
  return start(core, command, args, {
    env: {
      ...process.env,
      ISSUER: provider,
      CLIENT_ID: CLIENT.id,
      CLIENT_SECRET: CLIENT.secret,
      APP_URL: app,
      ...env,
    },
  });
}

const addr = (app) => new URL(app).host;

export const peers = [
  {
    name: 'Flask sample',
    short: 'Flask',
    login: '/login',
    configured: 'the sign-in of Okta\'s Flask sample, in `peers/flask/app.py`: Flask 3.1, flask-login, requests, PyJWT; gunicorn 23 with one gthread worker of 8 threads, one worker because the sample keeps its users in the process\'s memory; sessions in Flask\'s signed cookie',
    start: (ctx) => run(ctx, join(built, 'venv/bin/gunicorn'), [
      '--chdir', 'scripts/bench/peers/flask', '--workers', '1', '--threads', '8',
      '--worker-class', 'gthread', '--bind', addr(ctx.app), '--log-level', 'warning', 'app:app',
    ], { SECRET_KEY: randomBytes(32).toString('hex') }),
  },
  {
    name: 'axum-oidc 0.6',
    short: 'axum-oidc',
    login: '/profile',
    configured: 'axum 0.8 with axum-oidc 0.6.0 as its README and examples set it up, in `peers/axum-oidc`: OidcAuthLayer and OidcLoginLayer, client secret, PKCE, sessions in tower-sessions\' MemoryStore; it asks no userinfo at sign-in',
    start: (ctx) => run(ctx, join(built, 'axum-oidc/release/axum-oidc-peer'), []),
  },
  {
    name: 'Apache mod_auth_openidc',
    short: 'mod_auth_openidc',
    login: '/profile',
    configured: 'Debian\'s Apache 2.4, event MPM with its defaults, and mod_auth_openidc 2.4.12, in `peers/apache/httpd.conf`: client secret, PKCE S256, sessions in its default shared-memory cache; /profile a server-side-include page of the claims',
    start: (ctx) => {
      // Its workers run as www-data (when started as root), which must read the pages.
      const dir = join(ctx.work, 'apache');
      cpSync('scripts/bench/peers/apache', dir, { recursive: true });
      for (const d of [ctx.work, dir, join(dir, 'htdocs')]) chmodSync(d, 0o755);
      const root = process.getuid?.() === 0;
      return run(ctx, '/usr/sbin/apache2', ['-f', join(dir, 'httpd.conf'), '-DFOREGROUND'], {
        PEER_DIR: dir,
        PEER_ADDR: addr(ctx.app),
        PEER_USER: root ? 'www-data' : '#' + process.getuid(),
        PEER_GROUP: root ? 'www-data' : '#' + process.getgid(),
        PEER_SECRET: randomBytes(24).toString('hex'),
      });
    },
  },
];
