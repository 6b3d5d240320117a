import { test, expect } from '@playwright/test';
import { APP, GLOBEX, PROVIDER } from '../playwright.config';
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

test('an unknown provider gets a 404 page that lists the real ones', async ({ page }) => {
  const landing = page.waitForResponse((r) => r.url().startsWith(`${APP}/signin`));
  await page.goto('/login?provider=okta');
  expect((await landing).status()).toBe(404);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('No such way to sign in');
  await expect(page.getByRole('list', { name: 'Identity providers' }).getByRole('link'))
    .toHaveText(['Sign in with Acme Corp', 'Sign in with Globex']);
});
