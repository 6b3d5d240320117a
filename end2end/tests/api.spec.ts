import { test, expect, type APIRequestContext } from '@playwright/test';
import { PROVIDER } from '../playwright.config';

// The app's API for other services (`GET /api/me`), with tokens from the bundled provider as a
// service gets them (the client credentials grant): a JWT access token (RFC 9068) for the
// app's API resource, checked with the provider's keys; an opaque one, which the app asks the
// provider about (introspection).
const API_RESOURCE = 'urn:leptos-oidc:api';

async function serviceToken(request: APIRequestContext, client: string, resource?: string) {
  const form: Record<string, string> = { grant_type: 'client_credentials' };
  if (resource) Object.assign(form, { resource, scope: 'api' });
  const basic = Buffer.from(`${client}:${client}-secret`).toString('base64');
  const response = await request.post(`${PROVIDER}/token`, { form, headers: { authorization: `Basic ${basic}` } });
  expect(response.status(), await response.text()).toBe(200);
  return (await response.json()).access_token as string;
}

async function me(request: APIRequestContext, token?: string) {
  return request.get('/api/me', { headers: token ? { authorization: `Bearer ${token}` } : {} });
}

test('/api/me takes a JWT access token and an opaque one from the bundled provider', async ({ request }) => {
  const jwt = await serviceToken(request, 'leptos-oidc-demo', API_RESOURCE);
  expect(jwt.split('.')).toHaveLength(3);
  let response = await me(request, jwt);
  expect(response.status()).toBe(200);
  let body = await response.json();
  expect(body.client_id).toBe('leptos-oidc-demo');
  expect(body.claims.scope).toBe('api');
  expect(body.claims.aud).toBe('leptos-oidc-demo');

  const opaque = await serviceToken(request, 'leptos-oidc-demo');
  expect(opaque.split('.')).toHaveLength(1);
  response = await me(request, opaque);
  expect(response.status()).toBe(200);
  body = await response.json();
  expect(body.client_id).toBe('leptos-oidc-demo');
  expect(response.headers()['cache-control']).toBe('no-store');
});

test("/api/me refuses another service's token, and asks for one when none is sent", async ({ request }) => {
  const reports = await serviceToken(request, 'leptos-oidc-demo-reports');
  let response = await me(request, reports);
  expect(response.status()).toBe(401);
  expect(response.headers()['www-authenticate']).toContain('error="invalid_token"');
  expect((await response.json()).error_description).toContain('which the API does not take');

  response = await me(request);
  expect(response.status()).toBe(401);
  expect(response.headers()['www-authenticate']).toBe('Bearer');
});
