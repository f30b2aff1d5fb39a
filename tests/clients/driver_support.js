'use strict';
/**
 * What the demo page's browser drivers share: how Chromium is started,
 * bounded waits on the page's state, the JSON report written once, and a
 * watchdog on the whole run, so the Python test calling a driver never
 * hangs on it.
 */

const CHROMIUM = process.env.XMEET_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
];
const STEP_TIMEOUT = 10000;
const RUN_TIMEOUT = 75000;

/**
 * The helpers of one driver, writing into its report `result` and reading
 * pages with `readPage` (run inside the page).
 */
function driver(result, readPage) {
  let finished = false;

  function finish(code) {
    if (finished) { return; }
    finished = true;
    process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code));
  }

  async function snapshot(page, name) {
    const state = await page.evaluate(readPage);
    if (name) { result.snapshots[name] = state; }
    return state;
  }

  /** Wait until check(state of the page) is true; fail with the last state seen. */
  async function until(page, what, check) {
    const deadline = Date.now() + STEP_TIMEOUT;
    let state = null;
    for (;;) {
      state = await page.evaluate(readPage);
      if (check(state)) { return state; }
      if (Date.now() > deadline) {
        const error = new Error('timed out waiting until ' + what);
        error.lastState = state;
        throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  function step(name) {
    result.step = name;
    result.steps.push(name);
  }

  /** Parse the arguments, run, and report: exit 0 only when every step passed. */
  function main(parseArgs, run) {
    let options;
    try {
      options = parseArgs(process.argv.slice(2));
    } catch (error) {
      result.error = error.message;
      finish(2);
      return;
    }
    const watchdog = setTimeout(() => {
      result.error = 'the whole run took more than ' + RUN_TIMEOUT + ' ms';
      finish(3);
    }, RUN_TIMEOUT);
    run(options).then(() => {
      clearTimeout(watchdog);
      finish(0);
    }, (error) => {
      clearTimeout(watchdog);
      result.error = String(error && error.stack || error);
      if (error && error.lastState) { result.snapshots.failed = error.lastState; }
      finish(1);
    });
  }

  return { snapshot, until, step, main };
}

module.exports = { CHROMIUM, CHROMIUM_ARGS, STEP_TIMEOUT, driver };
