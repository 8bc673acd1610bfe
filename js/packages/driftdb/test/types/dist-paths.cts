// Type-level check of the 1.0.12 module paths under `dist/` for CommonJS consumers (`require`), which 1.0.12 was
// built for. Checked by `tsc -p test/types` in `pretest`.
import compactor = require('driftdb/dist/compactor')
import root = require('driftdb')
import types = require('driftdb/dist/types.js')

class Doubling extends compactor.Compactable<number, number> {
  applyAction(state: number, action: number): number {
    return state + 2 * action
  }
  initialState(): number {
    return 0
  }
}

export function make(db: root.DbConnection): compactor.Compactor<number, number> {
  const key: types.Key = 'k'
  return new root.Compactor({ key, db, compactable: new Doubling(), callback: () => {} })
}
