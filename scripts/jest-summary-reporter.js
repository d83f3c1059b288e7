/**
 * Prints one closing line `N passed, N failed, N skipped` after the jest run, so that a run which executed
 * no test (0 passed) is visible to a reader and to CI log parsers.
 */
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    // Suites that failed to run at all (syntax error, throw at import) count as failures too.
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    const line = `${results.numPassedTests} passed, ${failed} failed, ${skipped} skipped`;
    // jest's own summary reporter runs after custom reporters: print at exit so this line is the last one.
    process.once('exit', () => process.stdout.write(`\n${line}\n`));
  }
}
module.exports = SummaryReporter;
