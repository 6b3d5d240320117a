// The `signedIn` fixture, for tests of pages behind sign-in:
//
//   import { test, expect } from '../fixtures';
//   test('my page', async ({ signedIn }) => {
//     await signedIn.goto('/reports');
//     await expect(signedIn.getByRole('heading', { level: 1 })).toHaveText('Reports for Bob Builder');
//   });
//
// `signedIn` is a page in a browser signed in as Bob (bob / builder at Acme Corp). The sign-in
// goes through the provider's real pages once per worker; every test then gets a fresh browser
// context holding that sign-in's cookies (Playwright's storage state), so tests do not pay for
// a sign-in each and do not share pages. Bob is the fixture's own user: a test that signs out
// should sign in someone else (Alice), or it ends the session the other tests use.
import { test as base, expect, type Page } from '@playwright/test';
import { APP } from './playwright.config';
import { signInWithAcme } from './helpers';

export const test = base.extend<{ signedIn: Page }, { signedInState: string }>({
  signedInState: [
    async ({ browser }, use, workerInfo) => {
      const context = await browser.newContext({ baseURL: APP });
      const page = await context.newPage();
      await page.goto('/profile');
      await signInWithAcme(page, 'bob', 'builder');
      await expect(page).toHaveURL(`${APP}/profile`);
      const state = `${workerInfo.project.outputDir}/signed-in-${workerInfo.workerIndex}.json`;
      await context.storageState({ path: state });
      await context.close();
      await use(state);
    },
    { scope: 'worker' },
  ],
  signedIn: async ({ browser, signedInState }, use) => {
    const context = await browser.newContext({ baseURL: APP, storageState: signedInState });
    await use(await context.newPage());
    await context.close();
  },
});

export { expect };
