// Steps the specs share: choosing a provider on the app's sign-in page, signing in at a
// provider's own pages, and waiting for hydration.
import { expect, type Page } from '@playwright/test';
import { APP, PROVIDER } from './playwright.config';

/** On the app's sign-in page, chooses a provider. */
export async function choose(page: Page, label = 'Acme Corp') {
  await expect(page).toHaveURL(new RegExp(`^${APP}/signin`));
  await page.getByRole('link', { name: `Sign in with ${label}` }).click();
}

/** Signs in at a provider's own login and consent pages (each issuer has its own). */
export async function signInAt(page: Page, issuer = PROVIDER, user = 'alice', password = 'wonderland') {
  await expect(page).toHaveURL(new RegExp(`^${issuer}/interaction/`));
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Allow' }).click();
}

/** Chooses Acme Corp on the sign-in page and signs in there. */
export async function signInWithAcme(page: Page, user = 'alice', password = 'wonderland') {
  await choose(page);
  await signInAt(page, PROVIDER, user, password);
}

/** Waits until the WASM has hydrated the page. */
export async function hydrated(page: Page) {
  await expect(page.locator('body[data-hydrated]')).toHaveCount(1);
}
