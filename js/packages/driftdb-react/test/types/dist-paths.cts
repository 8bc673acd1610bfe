// driftdb-react 1.0.12 was CommonJS: `require('driftdb-react/dist/index')` keeps its types. Checked by `tsc`.
import react = require('driftdb-react/dist/index')

export const provider: typeof react.DriftDBProvider = react.DriftDBProvider
