import { test, expect } from '@playwright/test';
import { ACCESS_TOKEN_TTL, APP, GLOBEX, PROVIDER } from '../playwright.config';
import { choose, signInAt } from '../helpers';

test('choose a provider, sign in, sign out, then the other; the last used comes first', async ({ page }) => {
  await page.goto('/');
  await page.getByRole('main').getByRole('link', { name: 'Sign in' }).click();
  // Both issuers of the bundled provider, in the configured order.
  const providers = page.getByRole('list', { name: 'Identity providers' }).getByRole('link');
  await expect(providers).toHaveText(['Sign in with Acme Corp', 'Sign in with Globex']);

  await choose(page, 'Globex');
  // Globex's own login page: its name, its users.
  await expect(page.getByText('Globex', { exact: true })).toBeVisible();
  await signInAt(page, GLOBEX, 'carol', 'chemistry');
  await expect(page).toHaveURL(`${APP}/profile`);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Carol Chen');
  await expect(page.getByRole('definition').filter({ hasText: /^Globex$/ })).toBeVisible();
  await expect(page.getByRole('definition').filter({ hasText: GLOBEX })).toBeVisible();

  // Signing out ends the session at Globex, the provider that signed it in.
  await page.getByRole('main').getByRole('button', { name: 'Sign out', exact: true }).click();
  await expect(page).toHaveURL(new RegExp(`^${GLOBEX}/session/end\\?`));
  await page.getByRole('button', { name: 'Yes, sign me out' }).click();
  await expect(page).toHaveURL(`${APP}/`);

  // Globex, used last, is offered first now.
  await page.goto('/signin');
  await expect(providers).toHaveText(['Sign in with Globex', 'Sign in with Acme Corp']);
  await expect(page.getByRole('listitem').first()).toContainText('Last used');

  await choose(page, 'Acme Corp');
  await signInAt(page, PROVIDER, 'alice', 'wonderland');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Alice Liddell');
  await expect(page.getByRole('definition').filter({ hasText: /^Acme Corp$/ })).toBeVisible();
});

test('an account outside the required group is refused, and signs out at its provider to try another', async ({ page }) => {
  await page.goto('/signin');
  await choose(page, 'Globex');
  await signInAt(page, GLOBEX, 'dave', 'diving');
  await expect(page).toHaveURL(new RegExp(`^${APP}/signin\\?error=not_allowed`));
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('This account may not use this app');
  await expect(page.getByRole('main').getByText('groups:admins')).toBeVisible();
  await page.goto('/profile');
  await expect(page).toHaveURL(`${APP}/signin?return_to=/profile`);

  await page.goBack();
  await page.getByRole('button', { name: 'Sign out at your provider' }).click();
  await expect(page).toHaveURL(new RegExp(`^${GLOBEX}/session/end\\?`));
  await page.getByRole('button', { name: 'Yes, sign me out' }).click();
  await expect(page).toHaveURL(`${APP}/`);

  // Carol is in the group.
  await page.goto('/signin');
  await choose(page, 'Globex');
  await signInAt(page, GLOBEX, 'carol', 'chemistry');
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Carol Chen');
  await expect(page.getByRole('row', { name: /groups/ })).toContainText('admins');
});

test('at Globex as a FAPI 2.0 provider: sign in, call its userinfo with a DPoP-bound token, renew it, sign out', async ({ page, request }) => {
  // The provider runs in its FAPI 2.0 mode: PAR required, DPoP offered (and, for the app's
  // client, its bound tokens and nonces required), PS256 ID tokens.
  const metadata = await (await request.get(`${GLOBEX}/.well-known/openid-configuration`)).json();
  expect(metadata.require_pushed_authorization_requests).toBe(true);
  expect(metadata.dpop_signing_alg_values_supported).toContain('ES256');
  expect(metadata.id_token_signing_alg_values_supported).toContain('PS256');

  await page.goto('/signin');
  await choose(page, 'Globex');
  await signInAt(page, GLOBEX, 'carol', 'chemistry');
  await expect(page).toHaveURL(`${APP}/profile`);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Carol Chen');

  // userinfo takes the token only with a proof of the session's key (and the provider's nonce).
  await page.goto('/api-demo');
  await expect(page.getByRole('row', { name: /^email / })).toContainText('carol@globex.example');

  // Renewed in the token's last quarter, with the same key: the API still answers after.
  await page.goto('/profile');
  const expiry = page.getByRole('definition').filter({ hasText: 'renewed before then' });
  const first = await expiry.textContent();
  await page.waitForTimeout((ACCESS_TOKEN_TTL * 3 / 4) * 1000 + 1200);
  await page.reload();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Carol Chen');
  await expect(expiry).not.toHaveText(first ?? '');
  await page.goto('/api-demo');
  await expect(page.getByRole('row', { name: /^email / })).toContainText('carol@globex.example');

  await page.goto('/profile');
  await page.getByRole('main').getByRole('button', { name: 'Sign out', exact: true }).click();
  await expect(page).toHaveURL(new RegExp(`^${GLOBEX}/session/end\\?`));
  await page.getByRole('button', { name: 'Yes, sign me out' }).click();
  await expect(page).toHaveURL(`${APP}/`);
  await page.goto('/profile');
  await expect(page).toHaveURL(`${APP}/signin?return_to=/profile`);
});

test('an unknown provider gets a 404 page that lists the real ones', async ({ page }) => {
  const landing = page.waitForResponse((r) => r.url().startsWith(`${APP}/signin`));
  await page.goto('/login?provider=okta');
  expect((await landing).status()).toBe(404);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('No such way to sign in');
  await expect(page.getByRole('list', { name: 'Identity providers' }).getByRole('link'))
    .toHaveText(['Sign in with Acme Corp', 'Sign in with Globex']);
});
