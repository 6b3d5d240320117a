import { test, expect } from '../fixtures';
import { ACCESS_TOKEN_TTL, APP, PROVIDER, STEP_UP_MAX_AGE } from '../playwright.config';
import { choose, hydrated, signInWithAcme } from '../helpers';

test('sign in, see the profile, stay signed in, sign out here and at the provider', async ({ page }) => {
  await page.goto('/');
  await hydrated(page);
  await page.getByRole('main').getByRole('link', { name: 'Sign in' }).click();
  await signInWithAcme(page);

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
  await choose(page);
  await expect(page.getByLabel('Password')).toBeVisible();

  // And the profile is no longer shown.
  await page.goto('/profile');
  await expect(page).toHaveURL(`${APP}/signin?return_to=/profile`);
});

test('a protected page sends you to sign in and back', async ({ page }) => {
  await page.goto('/profile');
  await signInWithAcme(page, 'bob', 'builder');
  await expect(page).toHaveURL(`${APP}/profile`);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Bob Builder');
});

test('signed-in pages through the signedIn fixture, the API demo in the browser; a program without a session gets a 401', async ({ signedIn, request }) => {
  await signedIn.goto('/');
  await expect(signedIn.getByText('Welcome back, Bob Builder.')).toBeVisible();
  await signedIn.goto('/profile');
  await expect(signedIn.getByRole('heading', { level: 1 })).toHaveText('Bob Builder');

  // The API demo, reached in the browser: its server function asks the provider with Bob's token.
  await hydrated(signedIn);
  await signedIn.getByRole('link', { name: 'Ask your provider about you, with your access token' }).click();
  await expect(signedIn).toHaveURL(`${APP}/api-demo`);
  await expect(signedIn.getByRole('row', { name: /email_verified/ })).toBeVisible();
  await expect(signedIn.getByRole('row', { name: /^email / })).toContainText('bob@');

  const program = await request.get('/profile', { headers: { accept: 'application/json' }, maxRedirects: 0 });
  expect(program.status()).toBe(401);
  expect(program.headers()['location']).toBeUndefined();
  expect((await program.json()).error).toBe('sign_in_required');
});

test('cancelling at the provider shows the access-denied page', async ({ page }) => {
  await page.goto('/login');
  await choose(page);
  const landing = page.waitForResponse((r) => r.url().startsWith(`${APP}/signin`));
  await page.getByRole('link', { name: 'Cancel' }).click();
  expect((await landing).status()).toBe(403);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Sign-in cancelled');
  await expect(page.getByRole('main').getByRole('link', { name: 'Try again with Acme Corp' })).toBeVisible();
  await page.goto('/profile');
  await expect(page).toHaveURL(`${APP}/signin?return_to=/profile`);
});

test('a wrong password is refused at the provider and nobody is signed in', async ({ page }) => {
  await page.goto('/login');
  await choose(page);
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('not-her-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText('Wrong username or password.');
  await page.goto(APP);
  await expect(page.getByRole('banner').getByRole('link', { name: 'Sign in' })).toBeVisible();
});

test('pages load their islands without console errors, and links load pages', async ({ page }) => {
  const errors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(e.message));

  for (const path of ['/', '/signin', '/signin?error=access_denied', '/logout', '/nowhere']) {
    await page.goto(path);
    await hydrated(page);
  }
  await page.goto('/profile');
  await signInWithAcme(page);
  await hydrated(page);
  await page.getByRole('link', { name: 'Leptos OIDC' }).click();
  await expect(page.getByText('Welcome back, Alice Liddell.')).toBeVisible();
  await hydrated(page);

  // The failure pages answer with their error status on purpose; nothing else may fail.
  expect(errors.filter((e) => !/status of (403|404)/.test(e))).toEqual([]);
});

test.describe('in Tokyo', () => {
  test.use({ timezoneId: 'Asia/Tokyo', locale: 'en-US' });

  test('the session times are shown in the reader\'s time zone', async ({ page }) => {
    await page.goto('/profile');
    await signInWithAcme(page);
    await hydrated(page);
    const signedIn = page.getByRole('definition').first().locator('time');
    // The moment itself, for machines, in UTC; for the reader, Tokyo time (UTC+9).
    const at = new Date((await signedIn.getAttribute('datetime')) ?? '');
    expect(Math.abs(Date.now() - at.getTime())).toBeLessThan(60_000);
    const tokyoHour = (at.getUTCHours() + 9) % 24;
    const hour12 = tokyoHour % 12 === 0 ? 12 : tokyoHour % 12;
    await expect(signedIn).toHaveText(
      new RegExp(`^[A-Z][a-z]{2} \\d{1,2}, \\d{4}(,| at) ${hour12}:\\d{2}:\\d{2}\\s${tokyoHour < 12 ? 'AM' : 'PM'} GMT\\+9$`));
  });
});

test('signing out at the provider ends the app session (back-channel logout)', async ({ page }) => {
  await page.goto('/profile');
  await signInWithAcme(page);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Alice Liddell');

  // Straight to the provider, as from another app: the provider tells ours server to server.
  await page.goto(`${PROVIDER}/session/end`);
  await page.getByRole('button', { name: 'Yes, sign me out' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('You are signed out');

  await page.goto('/');
  await expect(page.getByRole('banner').getByRole('link', { name: 'Sign in' })).toBeVisible();
  await page.goto('/profile');
  await expect(page).toHaveURL(`${APP}/signin?return_to=/profile`);
});

test('sign out everywhere ends the session in another browser too', async ({ page, browser }) => {
  const other = await browser.newContext();
  const otherPage = await other.newPage();
  for (const p of [page, otherPage]) {
    await p.goto(`${APP}/profile`);
    await signInWithAcme(p);
    await expect(p.getByRole('heading', { level: 1 })).toHaveText('Alice Liddell');
  }
  // Older than the step-up age: Acme asks for Alice's password again before anything ends.
  await page.waitForTimeout(STEP_UP_MAX_AGE * 1000 + 500);
  await page.getByRole('button', { name: 'Sign out everywhere' }).click();
  await expect(page).toHaveURL(new RegExp(`^${PROVIDER}/interaction/`));
  await otherPage.reload();
  await expect(otherPage.getByRole('heading', { level: 1 })).toHaveText('Alice Liddell');
  await page.getByLabel('Password').fill('wonderland');
  await page.getByLabel('Username').fill('alice');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(`${APP}/logout?confirm=everywhere`);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Sign out everywhere?');
  await page.getByRole('button', { name: 'Sign out everywhere' }).click();
  await expect(page).toHaveURL(new RegExp(`^${PROVIDER}/session/end\\?`));

  await otherPage.goto(`${APP}/`);
  await expect(otherPage.getByRole('banner').getByRole('link', { name: 'Sign in' })).toBeVisible();
  await other.close();
});

test('your sessions lists every browser, and ends another one', async ({ page, browser }) => {
  // Another browser of Alice's, which the list names by its User-Agent.
  const other = await browser.newContext({
    userAgent: 'Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0',
  });
  const otherPage = await other.newPage();
  for (const p of [page, otherPage]) {
    await p.goto(`${APP}/profile`);
    await signInWithAcme(p);
    await expect(p.getByRole('heading', { level: 1 })).toHaveText('Alice Liddell');
  }
  await page.getByRole('link', { name: 'Your sessions in every browser' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Your sessions');
  const sessions = page.getByRole('main').getByRole('listitem');
  await expect(sessions.first()).toContainText('This browser');
  const firefox = sessions.filter({ hasText: 'Firefox 132 on Linux' });
  await expect(firefox).toHaveCount(1);
  await expect(firefox).toContainText('Acme Corp');
  await expect(firefox.getByText('This browser')).toHaveCount(0);

  await firefox.getByRole('button', { name: 'End this session' }).click();
  await expect(page).toHaveURL(`${APP}/sessions?ended=1`);
  await expect(page.getByRole('status')).toHaveText('The session was ended: that browser is signed out.');
  await expect(sessions.filter({ hasText: 'Firefox 132 on Linux' })).toHaveCount(0);

  await otherPage.goto(`${APP}/`);
  await expect(otherPage.getByRole('banner').getByRole('link', { name: 'Sign in' })).toBeVisible();
  await page.goto(`${APP}/profile`);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Alice Liddell');
  await other.close();
});

test('the access token is renewed before it expires', async ({ page }) => {
  await page.goto('/profile');
  await signInWithAcme(page);
  // The moment itself (the text is the reader's time zone's, once the page's island runs).
  const expiry = page.getByRole('definition').filter({ hasText: 'renewed before then' }).locator('time');
  const first = await expiry.getAttribute('datetime');
  // Renewal comes in the token's last quarter.
  await page.waitForTimeout((ACCESS_TOKEN_TTL * 3 / 4) * 1000 + 1200);
  await page.reload();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Alice Liddell');
  await expect(expiry).not.toHaveAttribute('datetime', first ?? '');
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('sign in and sign out work as plain links and forms', async ({ page }) => {
    await page.goto('/');
    await page.getByRole('main').getByRole('link', { name: 'Sign in' }).click();
    await signInWithAcme(page);
    await expect(page).toHaveURL(`${APP}/profile`);
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Alice Liddell');
    // Times as the server writes them, in UTC.
    await expect(page.getByRole('definition').first()).toHaveText(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$/);
    await page.getByRole('main').getByRole('button', { name: 'Sign out', exact: true }).click();
    await expect(page).toHaveURL(new RegExp(`^${PROVIDER}/session/end\\?`));
    await page.getByRole('button', { name: 'Yes, sign me out' }).click();
    await expect(page).toHaveURL(`${APP}/`);
    await expect(page.getByRole('banner').getByRole('link', { name: 'Sign in' })).toBeVisible();
  });
});
