import { test, expect, type Page } from '@playwright/test';
import { APP, PROVIDER } from '../playwright.config';

/** Signs in at the bundled provider's own login and consent pages. */
async function signInAtProvider(page: Page, user = 'alice', password = 'wonderland') {
  await expect(page).toHaveURL(new RegExp(`^${PROVIDER}/interaction/`));
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Allow' }).click();
}

/** Waits until the WASM has hydrated the page. */
async function hydrated(page: Page) {
  await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
}

test('sign in, see the profile, stay signed in, sign out everywhere', async ({ page }) => {
  await page.goto('/');
  await hydrated(page);
  await page.getByRole('main').getByRole('link', { name: 'Sign in' }).click();
  await signInAtProvider(page);

  await expect(page).toHaveURL(`${APP}/profile`);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Alice Liddell');
  await expect(page.getByText('alice@example.com').first()).toBeVisible();
  await expect(page.getByRole('row', { name: /preferred_username/ })).toContainText('alice');

  await page.reload();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Alice Liddell');

  // Sign out: the app's session ends, and the provider asks to end its own.
  await page.getByRole('banner').getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(new RegExp(`^${PROVIDER}/session/end\\?`));
  await page.getByRole('button', { name: 'Yes, sign me out' }).click();
  await expect(page).toHaveURL(`${APP}/`);
  await expect(page.getByRole('banner').getByRole('link', { name: 'Sign in' })).toBeVisible();

  // The provider's session ended too: the next sign-in asks for credentials again.
  await page.goto('/login');
  await expect(page.getByLabel('Password')).toBeVisible();

  // And the profile is no longer shown.
  await page.goto('/profile');
  await expect(page).toHaveURL(new RegExp(`^${PROVIDER}/interaction/`));
});

test('a protected page sends you to sign in and back', async ({ page }) => {
  await page.goto('/profile');
  await signInAtProvider(page, 'bob', 'builder');
  await expect(page).toHaveURL(`${APP}/profile`);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Bob Builder');
});

test('cancelling at the provider shows the access-denied page', async ({ page }) => {
  await page.goto('/login');
  const landing = page.waitForResponse((r) => r.url().startsWith(`${APP}/signin`));
  await page.getByRole('link', { name: 'Cancel' }).click();
  expect((await landing).status()).toBe(403);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Sign-in cancelled');
  await expect(page.getByRole('main').getByRole('link', { name: 'Try again' })).toBeVisible();
  await page.goto('/profile');
  await expect(page).toHaveURL(new RegExp(`^${PROVIDER}/interaction/`));
});

test('a wrong password is refused at the provider and nobody is signed in', async ({ page }) => {
  await page.goto('/login');
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('not-her-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText('Wrong username or password.');
  await page.goto(APP);
  await expect(page.getByRole('banner').getByRole('link', { name: 'Sign in' })).toBeVisible();
});

test('pages hydrate without console errors, and links then route in the browser', async ({ page }) => {
  const errors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));

  for (const path of ['/', '/signin', '/signin?error=access_denied', '/logout', '/nowhere']) {
    await page.goto(path);
    await hydrated(page);
  }
  await page.goto('/profile');
  await signInAtProvider(page);
  await hydrated(page);
  // A client-side navigation: no new document is loaded.
  let documents = 0;
  page.on('request', (r) => { if (r.resourceType() === 'document') documents++; });
  await page.getByRole('link', { name: 'Leptos OIDC' }).click();
  await expect(page.getByText('Welcome back, Alice Liddell.')).toBeVisible();
  expect(documents).toBe(0);

  // The failure pages answer with their error status on purpose; nothing else may fail.
  expect(errors.filter((e) => !/status of (403|404)/.test(e))).toEqual([]);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('sign in and sign out work as plain links and forms', async ({ page }) => {
    await page.goto('/');
    await page.getByRole('main').getByRole('link', { name: 'Sign in' }).click();
    await signInAtProvider(page);
    await expect(page).toHaveURL(`${APP}/profile`);
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Alice Liddell');
    await page.getByRole('main').getByRole('button', { name: 'Sign out' }).click();
    await expect(page).toHaveURL(new RegExp(`^${PROVIDER}/session/end\\?`));
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await expect(page).toHaveURL(`${APP}/`);
    await expect(page.getByRole('banner').getByRole('link', { name: 'Sign in' })).toBeVisible();
  });
});
