// Polling helpers for the JS test suites.

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Polls `check` until it returns a truthy value (which is returned) and fails after `timeout` ms.
 * A `check` that throws (e.g. a failing assert) counts as "not yet"; its last error is reported on timeout.
 *
 * @template T
 * @param {() => T} check
 * @param {{what?: string, timeout?: number}} [options]
 * @returns {Promise<T>}
 */
export async function waitFor(check, { what, timeout = 5_000 } = {}) {
  const deadline = Date.now() + timeout
  let lastError = null
  for (;;) {
    try {
      const result = check()
      if (result) return result
      lastError = null
    } catch (error) {
      lastError = error
    }
    if (Date.now() >= deadline) {
      const detail = lastError ? `\nlast check failed with: ${lastError.message}` : ''
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${detail}`, { cause: lastError })
    }
    await sleep(10)
  }
}

/** Retries `assertion` (a function that throws while unsatisfied) until it passes; see waitFor. */
export function eventually(assertion, options) {
  return waitFor(() => {
    assertion()
    return true
  }, options)
}

/**
 * Awaits the async `check` again every `interval` ms until it resolves (its result is returned) instead of
 * throwing, and fails after `timeout` ms with its last error. For checks that look at a browser page.
 *
 * @template T
 * @param {string} what
 * @param {() => Promise<T>} check
 * @param {number} [timeout]
 * @param {number} [interval]
 * @returns {Promise<T>}
 */
export async function until(what, check, timeout = 10_000, interval = 50) {
  const deadline = Date.now() + timeout
  for (;;) {
    try {
      return await check()
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${error?.message ?? error}`)
    }
    await sleep(interval)
  }
}
