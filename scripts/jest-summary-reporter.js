/**
 * Prints one closing line `N passed, N failed, N skipped` after the jest run, so that a run which executed
 * no test (0 passed) is visible to a reader and to CI log parsers.
 */
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    // Suites that failed to run at all (syntax error, throw at import) count as failures too.
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    process.stdout.write(`\n${results.numPassedTests} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
module.exports = SummaryReporter;
