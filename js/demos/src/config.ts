import type { TransportOption } from 'driftdb'

export interface AppConfig {
  /** The DriftDB server's base URL. */
  api: string
  /** `?transport=websocket` (or `webtransport`) forces a transport; `auto` otherwise. */
  transport: TransportOption
}

/**
 * The server is the page's own origin (the demos are served by `driftdb serve --static-dir`). Under `vite dev` the
 * page comes from Vite, so the server is `VITE_DRIFTDB_API` or a local `driftdb serve` on port 8080.
 */
export function readConfig(location: Location = window.location): AppConfig {
  const params = new URLSearchParams(location.search)
  const t = params.get('transport')
  const transport: TransportOption = t === 'websocket' || t === 'webtransport' ? t : 'auto'
  const fromEnv = import.meta.env.VITE_DRIFTDB_API as string | undefined
  const api = fromEnv ?? (import.meta.env.DEV ? 'http://127.0.0.1:8080/' : `${location.origin}/`)
  return { api, transport }
}
