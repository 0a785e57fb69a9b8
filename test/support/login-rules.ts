/**
 * The login rules of the test app (upstreams.ts `testApp`), one fixture for every test that configures
 * them: the JSON API (token and user in the response body) and the cookie form (302 to /app).
 */
import type { ConfigInput } from '../../src/config/schema.js';

export type LoginRuleInput = NonNullable<ConfigInput['login']>[number];

export const JSON_LOGIN_RULE: LoginRuleInput = {
  match: 'POST /api/login',
  token: 'json:accessToken',
  user: 'json:user.id',
};

export const FORM_LOGIN_RULE: LoginRuleInput = {
  match: 'POST /login',
  token: 'cookie:sid',
  user: 'request.form:username',
  success: { status: 302, location: '/app' },
};

/** Both, in this order: what a test gateway in front of the test app uses unless told otherwise. */
export const TEST_LOGIN_RULES: LoginRuleInput[] = [JSON_LOGIN_RULE, FORM_LOGIN_RULE];
