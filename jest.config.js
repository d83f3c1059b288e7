/**
 * Jest configuration. Type checking runs once, up front, in `npm test` (`tsc --noEmit`), so ts-jest only
 * transpiles (tsconfig.jest.json sets isolatedModules) and the suite stays fast on 2 cores.
 * Slow end-to-end cases are opt-in: `npm run test:slow` (SADA_SLOW_TESTS=1); see __tests__/helpers/slow.ts.
 */
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/__tests__'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.jest.json', diagnostics: false }],
  },
  testTimeout: 120000,
  maxWorkers: 2,
  reporters: ['default', '<rootDir>/scripts/jest-summary-reporter.js'],
};
