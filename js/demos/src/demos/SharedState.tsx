import { useSharedState } from 'driftdb-react'
import React from 'react'

export function SharedStateDemo(): React.ReactElement {
  const [level, setLevel] = useSharedState('state/slider', 50)
  const [lit, setLit] = useSharedState('state/checkbox', false)
  const [note, setNote] = useSharedState('state/text', '')

  return (
    <div className="card demo shared-state">
      <div className="field">
        <label htmlFor="level">
          Level <output data-testid="slider-value">{level}</output>
        </label>
        <input
          id="level"
          data-testid="slider"
          type="range"
          min={0}
          max={100}
          value={level}
          onChange={(e) => setLevel(Number(e.currentTarget.value))}
        />
        <div className="meter" aria-hidden="true">
          <div className="meter-fill" style={{ width: `${level}%` }} />
        </div>
      </div>

      <div className="field">
        <label className="toggle">
          <input
            data-testid="checkbox"
            type="checkbox"
            checked={lit}
            onChange={(e) => setLit(e.currentTarget.checked)}
          />
          <span>Lights {lit ? 'on' : 'off'}</span>
          <span className={`bulb ${lit ? 'bulb-on' : ''}`} data-testid="bulb" aria-hidden="true" />
        </label>
      </div>

      <div className="field">
        <label htmlFor="note">Shared note</label>
        <input
          id="note"
          data-testid="text"
          type="text"
          placeholder="Type here; everyone in the room sees it"
          value={note}
          maxLength={200}
          onChange={(e) => setNote(e.currentTarget.value)}
        />
      </div>
      <p className="muted small">
        Each value is one key whose stored stream holds only its last value (<code>replace</code>), so a tab that joins
        later starts from the current state.
      </p>
    </div>
  )
}
