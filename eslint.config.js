// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** The one-way data flow of DESIGN.md: a module may not import the modules listed against it. */
const forbidden = {
  config: ['proxy', 'sessions', 'store', 'cache', 'tokens', 'admin', 'ui', 'notify', 'observability'],
  errors: ['config', 'proxy', 'sessions', 'store', 'cache', 'tokens', 'admin', 'ui', 'notify'],
  tokens: ['sessions', 'store', 'cache', 'proxy', 'admin', 'ui', 'notify'],
  sessions: ['proxy', 'notify', 'admin', 'ui', 'cache/lru-cache-impl'],
  store: ['cache', 'proxy', 'sessions', 'notify', 'admin', 'ui', 'tokens'],
  cache: ['store', 'proxy', 'sessions', 'notify', 'admin', 'ui'],
  proxy: ['store', 'admin', 'notify'],
  notify: ['proxy', 'store', 'cache', 'admin', 'ui'],
  ui: ['proxy', 'store', 'cache', 'admin', 'notify'],
  admin: ['proxy', 'store', 'cache', 'notify'],
  geo: ['proxy', 'sessions', 'store', 'cache', 'tokens', 'admin', 'ui', 'notify'],
  observability: ['proxy', 'sessions', 'store', 'cache', 'admin', 'ui', 'notify', 'tokens'],
  // The CLI's commands read the config and open the store (check --connect); the gateway is src/gateway.ts's.
  cli: ['proxy', 'sessions', 'cache', 'tokens', 'admin', 'ui', 'notify', 'observability'],
};

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'bench/dist/**',
      'node_modules/**',
      'coverage/**',
      'test/apps/**/*.py',
      'test/artifacts/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  ...Object.entries(forbidden).map(([from, targets]) => ({
    files: [`src/${from}/**/*.ts`, `src/${from}.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: targets.map((t) => ({
            group: [`../${t}`, `../${t}/*`, `../../${t}`, `../../${t}/*`, `./${t}`, `./${t}/*`],
            message: `src/${from} must not import src/${t} (see DESIGN.md "Layout").`,
          })),
        },
      ],
    },
  })),
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
