/**
 * Slow end-to-end cases are opt-in: they run with SADA_SLOW_TESTS=1 (`npm run test:slow`). Otherwise they are
 * reported as skipped (visible in jest's summary and in the closing `N passed, N failed, N skipped` line).
 */
export const SLOW_ENABLED = process.env.SADA_SLOW_TESTS === '1';

export const itSlow: jest.It = SLOW_ENABLED ? it : it.skip;
