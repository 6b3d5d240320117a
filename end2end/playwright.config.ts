import { defineConfig } from '@playwright/test';

// The suite drives the release binary, started on its own from the bundle that
// scripts/test.sh makes (the binary with site/ next to it), and the bundled provider.
// Ports differ from `scripts/dev.sh`'s so a running dev server does not get in the way.
export const APP = 'http://127.0.0.1:3300';
// The bundled provider's two issuers.
export const PROVIDER = 'http://127.0.0.1:4300';
export const GLOBEX = 'http://127.0.0.1:4301';
export const ACCESS_TOKEN_TTL = 8;
export const STEP_UP_MAX_AGE = 3;
const bundle = process.env.E2E_APP_DIR ?? '../target/e2e';

export default defineConfig({
  testDir: './tests',
  // One worker: two cores, and the app and provider need one too.
  workers: 1,
  timeout: 30_000,
  expect: { timeout: 10_000 },
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  use: {
    baseURL: APP,
    trace: 'retain-on-failure',
    launchOptions: {
      // Playwright cannot download browsers here; Debian's Chromium is used instead.
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    },
  },
  webServer: [
    {
      command: 'node ../scripts/provider/provider.mjs',
      url: `${GLOBEX}/.well-known/openid-configuration`,
      env: {
        PROVIDER_PORT: '4300',
        APP_URL: APP,
        PROVIDER_KEYS_FILE: `${bundle}/provider-jwks.json`,
        // Short-lived access tokens, so that the suite sees the app renew them.
        PROVIDER_ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL),
        // Globex as a FAPI 2.0 provider: every run signs in both ways, Acme plainly.
        PROVIDER_PROFILE: 'fapi2',
      },
      reuseExistingServer: false,
      stdout: 'pipe',
      timeout: 30_000,
    },
    {
      command: './leptos-oidc',
      cwd: bundle,
      url: `${APP}/`,
      env: {
        LEPTOS_SITE_ADDR: '127.0.0.1:3300',
        LEPTOS_SITE_ROOT: 'site',
        // As scripts/dev.sh configures it: both issuers of the bundled provider.
        OIDC_PROVIDERS: 'acme,globex',
        OIDC_ACME_LABEL: 'Acme Corp',
        OIDC_ACME_ISSUER: PROVIDER,
        OIDC_ACME_CLIENT_ID: 'leptos-oidc-demo',
        OIDC_ACME_CLIENT_SECRET: 'leptos-oidc-demo-secret',
        OIDC_GLOBEX_LABEL: 'Globex',
        OIDC_GLOBEX_ISSUER: GLOBEX,
        OIDC_GLOBEX_CLIENT_ID: 'leptos-oidc-globex',
        // Globex is the high-assurance provider (FAPI 2.0): private_key_jwt (the app's
        // development key, which Globex fetches from /.well-known/jwks.json), PAR, which it
        // requires, and DPoP-bound tokens, with its nonces.
        OIDC_GLOBEX_CLIENT_AUTH: 'private_key_jwt',
        OIDC_GLOBEX_DPOP: 'true',
        // Only Globex's admins (Carol, not Dave) may sign in there: the claim rule's refusal.
        OIDC_GLOBEX_REQUIRE_CLAIM: 'groups:admins',
        DATABASE_URL: 'sqlite:data/e2e.db',
        // "Sign out everywhere" asks for the password again after this: the suite sees it.
        STEP_UP_MAX_AGE_SECONDS: String(STEP_UP_MAX_AGE),
        RUST_LOG: 'leptos_oidc=info',
      },
      reuseExistingServer: false,
      stdout: 'pipe',
      timeout: 60_000,
    },
  ],
});
