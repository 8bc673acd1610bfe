// Type-level check of driftdb-react 1.0.12's module path `dist/index` (with and without `.js`), next to the
// `driftdb/dist/compactor` import of the reference's CRDT demo. Checked by `tsc -p test/types` in `pretest`.
import { Compactable, Compactor } from 'driftdb/dist/compactor'
import { DriftDBProvider, useDatabase } from 'driftdb-react/dist/index'
import { useSharedState } from 'driftdb-react/dist/index.js'
import React from 'react'

class Counter extends Compactable<number, number> {
  applyAction(state: number, action: number): number {
    return state + action
  }
  initialState(): number {
    return 0
  }
}

function Count(): React.ReactElement {
  const db = useDatabase()
  const [label] = useSharedState('label', 'count')
  const compactor = React.useRef(new Compactor({ db, key: 'n', compactable: new Counter(), callback: () => {} }))
  return (
    <p>
      {label}: {compactor.current.state}
    </p>
  )
}

export function App(): React.ReactElement {
  return (
    <DriftDBProvider api="http://localhost:8080/">
      <Count />
    </DriftDBProvider>
  )
}
