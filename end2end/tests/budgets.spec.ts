import { test, expect } from '@playwright/test';
import { gzipSync } from 'node:zlib';

// Size guards on what every visitor downloads, measured on the release build this suite runs.
// The budget for the WASM is 150 KB gzipped (the README's "Performance"); with the pages
// rendered on the server only and one island, it is 78 KiB.
const WASM_GZIP_LIMIT = 150 * 1000;
const JS_GZIP_LIMIT = 8 * 1024;

async function gzippedSize(request: import('@playwright/test').APIRequestContext, path: string) {
  const response = await request.get(path);
  expect(response.status()).toBe(200);
  return gzipSync(await response.body(), { level: 9 }).length;
}

test('the WASM and JS stay within their size limits', async ({ request }) => {
  expect(await gzippedSize(request, '/pkg/leptos_oidc.wasm')).toBeLessThanOrEqual(WASM_GZIP_LIMIT);
  expect(await gzippedSize(request, '/pkg/leptos_oidc.js')).toBeLessThanOrEqual(JS_GZIP_LIMIT);
});
