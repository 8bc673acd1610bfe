import React, { Suspense, lazy } from 'react'

/**
 * A demo page loaded on first visit, in its own chunk: the heavy ones (an editor, Yjs) stay out of the bundle every
 * other page loads.
 */
export function lazyDemo(load: () => Promise<{ default: () => React.ReactElement }>): () => React.ReactElement {
  const Page = lazy(load)
  return function LazyDemo(): React.ReactElement {
    return (
      <Suspense fallback={<div className="card demo muted">Loading…</div>}>
        <Page />
      </Suspense>
    )
  }
}
