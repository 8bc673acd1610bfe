// Ends what a test process started (servers, browsers) however the process ends.
//
//   whenProcessEnds(() => child.kill('SIGKILL'))

const callbacks = new Set()

function runAll() {
  for (const callback of callbacks) {
    try {
      callback()
    } catch {
      // Best effort: one failing cleanup must not stop the others.
    }
  }
}

// 'exit' runs on normal exit, on process.exit and on uncaught exceptions. Signals terminate without 'exit' unless
// handled, so run the cleanups there too, then restore the signal's default effect when nobody else (e.g. the
// node:test harness) handles it.
process.on('exit', runAll)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    runAll()
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  })
}

/** Runs `callback` (synchronously) when the process exits or is ended by SIGINT, SIGTERM or SIGHUP. */
export function whenProcessEnds(callback) {
  callbacks.add(callback)
}
