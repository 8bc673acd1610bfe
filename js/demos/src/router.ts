import { useEffect, useState } from 'react'

/** The route in the URL's hash (`#/cursors` → `/cursors`). The query string (the room) is left alone. */
function currentRoute(): string {
  const hash = window.location.hash.replace(/^#/, '')
  return hash.startsWith('/') ? hash : '/'
}

/** Hash routing: the static server only has `index.html`, and `?_driftdb_room=` stays in the query string. */
export function useRoute(): string {
  const [route, setRoute] = useState(currentRoute)
  useEffect(() => {
    const onChange = () => setRoute(currentRoute())
    window.addEventListener('hashchange', onChange)
    return () => window.removeEventListener('hashchange', onChange)
  }, [])
  return route
}
