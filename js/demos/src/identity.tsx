import { uniqueClientId } from 'driftdb'
import React, { useCallback, useContext, useMemo, useState } from 'react'

const ADJECTIVES = ['Swift', 'Brave', 'Calm', 'Lucky', 'Jolly', 'Clever', 'Sunny', 'Quiet', 'Bold', 'Merry', 'Witty']
const ANIMALS = ['Otter', 'Fox', 'Panda', 'Koala', 'Lynx', 'Heron', 'Badger', 'Gecko', 'Falcon', 'Yak', 'Puffin']
export const COLORS = [
  '#e11d48',
  '#ea580c',
  '#ca8a04',
  '#16a34a',
  '#0d9488',
  '#0284c7',
  '#4f46e5',
  '#9333ea',
  '#db2777',
  '#65a30d',
]
const NAME_KEY = 'driftdb-demos-name'
const COLOR_KEY = 'driftdb-demos-color'

function hash(text: string): number {
  let h = 2166136261
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619)
  return h >>> 0
}

/** A default name and colour derived from the client id, so that they stay the same across reloads. */
export function defaultName(id: string): string {
  const h = hash(id)
  return `${ADJECTIVES[h % ADJECTIVES.length]} ${ANIMALS[Math.floor(h / 97) % ANIMALS.length]}`
}

export function colorFor(id: string): string {
  return COLORS[hash(`${id}/colour`) % COLORS.length] ?? '#4f46e5'
}

export interface Identity {
  /** The DriftDB client id (session storage: one per tab, kept across reloads). */
  id: string
  name: string
  color: string
  setName: (name: string) => void
  /** Switches to the next colour of the palette (two players may start with the same one). */
  nextColor: () => void
}

const IdentityContext = React.createContext<Identity | null>(null)

function stored(key: string): string | null {
  try {
    return sessionStorage.getItem(key)
  } catch {
    return null
  }
}

function store(key: string, value: string): void {
  try {
    sessionStorage.setItem(key, value)
  } catch {
    // Private mode: the value lasts until the tab closes.
  }
}

export function IdentityProvider(props: { children: React.ReactNode }): React.ReactElement {
  const id = useMemo(() => uniqueClientId(), [])
  const [name, setNameState] = useState(() => stored(NAME_KEY) ?? defaultName(id))
  const [color, setColor] = useState(() => stored(COLOR_KEY) ?? colorFor(id))
  const setName = useCallback((next: string) => {
    const clean = next.slice(0, 24)
    setNameState(clean)
    store(NAME_KEY, clean)
  }, [])
  const nextColor = useCallback(() => {
    setColor((current) => {
      const next = COLORS[(COLORS.indexOf(current) + 1) % COLORS.length] ?? current
      store(COLOR_KEY, next)
      return next
    })
  }, [])
  const value = useMemo(
    () => ({ id, name: name.trim() || defaultName(id), color, setName, nextColor }),
    [id, name, color, setName, nextColor],
  )
  return <IdentityContext.Provider value={value}>{props.children}</IdentityContext.Provider>
}

export function useIdentity(): Identity {
  const identity = useContext(IdentityContext)
  if (identity === null) throw new Error('useIdentity must be used within an IdentityProvider')
  return identity
}
