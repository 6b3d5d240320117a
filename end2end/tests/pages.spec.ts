import { type Page } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { test, expect } from '../fixtures';
import { APP, PROVIDER } from '../playwright.config';
import { choose, hydrated, signInAt } from '../helpers';

// The pages as a product: no axe-core violation, no horizontal scrolling at 320 px, dark mode
// honoured, and everything reachable with the keyboard alone.

const ANONYMOUS = ['/', '/signin', '/signin?error=access_denied', '/signin?error=unknown_provider',
  '/signin?error=not_allowed&rule=groups%3Aadmins',
  '/signin?error=provider_unavailable&provider=globex', '/logout', '/logout?error=malformed', '/nowhere'];
const SIGNED_IN = ['/', '/signin', '/profile', '/api-demo', '/sessions', '/sessions?ended=1',
  '/sessions?error=csrf', '/logout', '/logout?error=csrf', '/logout?confirm=everywhere'];

async function signIn(page: Page) {
  await page.goto('/profile');
  await choose(page);
  await signInAt(page);
  await expect(page).toHaveURL(`${APP}/profile`);
}

async function expectNoViolations(page: Page, path: string) {
  const { violations } = await new AxeBuilder({ page }).analyze();
  expect(violations.map((v) => `${path}: ${v.id}: ${v.nodes.map((n) => n.target).join(' ')}`)).toEqual([]);
}

async function expectNoHorizontalScrolling(page: Page, path: string) {
  const [scroll, width] = await page.evaluate(() =>
    [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  expect(scroll, `${path} scrolls sideways`).toBeLessThanOrEqual(width);
}

for (const scheme of ['light', 'dark'] as const) {
  test(`every page passes axe in ${scheme} mode`, async ({ page, signedIn }) => {
    await page.emulateMedia({ colorScheme: scheme });
    for (const path of ANONYMOUS) {
      await page.goto(path);
      await expectNoViolations(page, path);
    }
    await signedIn.emulateMedia({ colorScheme: scheme });
    for (const path of SIGNED_IN) {
      await signedIn.goto(path);
      await expectNoViolations(signedIn, path);
    }
  });
}

test('no page breaks its Content-Security-Policy, loaded or reached by its links', async ({ page, signedIn }) => {
  const violations: string[] = [];
  for (const p of [page, signedIn]) {
    // Each document records what the browser refused under its policy, from its first byte.
    await p.addInitScript(() => {
      const w = window as unknown as { cspViolations: string[] };
      w.cspViolations = [];
      document.addEventListener('securitypolicyviolation', (e) =>
        w.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    p.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
  }
  const recorded = (p: Page, where: string) =>
    p.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations)
      .then((found) => violations.push(...found.map((v) => `${where}: ${v}`)));
  async function visit(p: Page, path: string) {
    const response = await p.goto(path);
    expect(response?.headers()['content-security-policy'], path).toContain("'nonce-");
    await hydrated(p);
    await recorded(p, path);
  }
  for (const path of ANONYMOUS) await visit(page, path);
  for (const path of SIGNED_IN) await visit(signedIn, path);
  // Reached by links, the islands running on each.
  await signedIn.goto('/profile');
  await hydrated(signedIn);
  await signedIn.getByRole('link', { name: 'Your sessions in every browser' }).click();
  await expect(signedIn.getByRole('heading', { level: 1 })).toHaveText('Your sessions');
  await signedIn.getByRole('link', { name: 'Back to your profile' }).click();
  await expect(signedIn.getByRole('heading', { level: 1 })).toHaveText('Bob Builder');
  await recorded(signedIn, 'by links');
  expect(violations).toEqual([]);
});

test('dark mode follows the system', async ({ page }) => {
  const background = () =>
    page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  await page.emulateMedia({ colorScheme: 'light' });
  await page.goto('/');
  const light = await background();
  await page.emulateMedia({ colorScheme: 'dark' });
  const dark = await background();
  expect(light).toBe('rgb(244, 245, 247)');
  expect(dark).toBe('rgb(16, 19, 26)');
});

test.describe('at 320 px wide', () => {
  // A time zone whose name is long once the islands have written the times in it.
  test.use({ viewport: { width: 320, height: 640 }, locale: 'en-US', timezoneId: 'Asia/Kolkata' });

  /** Waits until the page's islands have run: no time left in UTC, as the server wrote it. */
  async function islandsRan(page: Page) {
    await hydrated(page);
    await expect(page.locator('time').filter({ hasText: /UTC$/ })).toHaveCount(0);
  }

  test('no page scrolls sideways, and the sign-out buttons do not touch', async ({ page }) => {
    for (const path of ANONYMOUS) {
      await page.goto(path);
      await expectNoHorizontalScrolling(page, path);
    }
    await signIn(page);
    for (const path of SIGNED_IN) {
      await page.goto(path);
      await islandsRan(page);
      await expectNoHorizontalScrolling(page, path);
    }
    await page.goto('/profile');
    await expect(page.locator('time').first()).toHaveText(/GMT\+5:30$/);
    const form = page.getByRole('main');
    const one = await form.getByRole('button', { name: 'Sign out', exact: true }).boundingBox();
    const all = await form.getByRole('button', { name: 'Sign out everywhere' }).boundingBox();
    expect(one && all).toBeTruthy();
    const apart = Math.max(all!.x - (one!.x + one!.width), all!.y - (one!.y + one!.height));
    expect(apart, 'the sign-out buttons touch').toBeGreaterThanOrEqual(8);
  });
});

test('sign in and out with the keyboard alone', async ({ page }) => {
  /** Presses Tab until the focused element has this accessible text. */
  async function tabTo(text: string) {
    for (let i = 0; i < 30; i++) {
      await page.keyboard.press('Tab');
      const focused = await page.evaluate(() => document.activeElement?.textContent?.trim() ?? '');
      if (focused === text) {
        const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
        expect(outline, `focus on "${text}" is not visible`).not.toBe('none');
        return;
      }
    }
    throw new Error(`Tab never reached "${text}"`);
  }
  await page.goto('/');
  await tabTo('Sign in');
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(/\/signin/);
  await tabTo('Sign in with Acme Corp');
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(new RegExp(`^${PROVIDER}/interaction/`));
  // The provider's page focuses its username field.
  await page.keyboard.type('alice');
  await page.keyboard.press('Tab');
  await page.keyboard.type('wonderland');
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Allow' }).focus();
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(`${APP}/profile`);

  await page.goto('/profile');
  await tabTo('Sign out everywhere');
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(new RegExp(`^${PROVIDER}/session/end\\?`));
  await page.goto(`${APP}/`);
  await expect(page.getByRole('banner').getByRole('link', { name: 'Sign in' })).toBeVisible();
});
