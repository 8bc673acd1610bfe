import type { CertificateHash } from './transport.js'

/** Information about a room returned by the DriftDB Room API. */
export interface RoomResult {
  /** The name of the room. */
  room: string
  /** The URL of a WebSocket endpoint that clients can connect to to send messages to the room. */
  socket_url: string
  /** The URL of an HTTP endpoint that clients can `POST` messages to to send a message to the room. */
  http_url: string
  /** The room's WebTransport URL, when the server offers WebTransport. */
  webtransport_url?: string
  /** SHA-256 hashes of the server's self-signed certificate, for `serverCertificateHashes`. */
  certificate_hashes?: CertificateHash[]
}

/**
 * The API base each room result came from (`Api.apiUrl`), so that a connection made with `{ room }` can ask the same
 * API for the room again on a reconnect (in a cluster the owner may have moved). A WeakMap, not a field: the result
 * keeps the server's JSON shape.
 */
const roomSources = new WeakMap<RoomResult, string>()

/** The API base URL `room` was fetched from by an `Api`, if it was. */
export function roomSource(room: RoomResult): string | undefined {
  return roomSources.get(room)
}

export interface OutgoingMessage {
  topic: string
  value: unknown
}

/** Client for the DriftDB Room API: creates rooms and looks them up. */
export class Api {
  apiUrl: string

  /** @param apiUrl The base URL of the DriftDB Room API. */
  constructor(apiUrl: string) {
    this.apiUrl = apiUrl.endsWith('/') ? apiUrl : `${apiUrl}/`
  }

  private async json(response: Response): Promise<RoomResult> {
    if (!response.ok) {
      throw new Error(`DriftDB API error ${response.status}: ${await response.text().catch(() => '')}`)
    }
    const room = (await response.json()) as RoomResult
    if (typeof room === 'object' && room !== null) roomSources.set(room, this.apiUrl)
    return room
  }

  /**
   * Ask the DriftDB server to create a new room and return its information.
   *
   * @param adminToken The server's admin token, when it runs with `--admin-token-file` (keep it on a backend).
   */
  async newRoom(adminToken?: string): Promise<RoomResult> {
    return this.json(await fetch(`${this.apiUrl}new`, { method: 'POST', headers: bearer(adminToken) }))
  }

  /**
   * Get information about an existing room.
   *
   * @param token A room token (or the admin token), when the server checks tokens.
   */
  async getRoom(roomId: string, token?: string): Promise<RoomResult> {
    return this.json(await fetch(roomUrl(this.apiUrl, roomId), { headers: bearer(token) }))
  }
}

/** `GET /room/ID` under the API base `api` (with or without its trailing `/`). */
export function roomUrl(api: string, roomId: string): string {
  return `${api.endsWith('/') ? api : `${api}/`}room/${encodeURIComponent(roomId)}`
}

/** An `Authorization: Bearer` header, or none. */
export function bearer(token: string | undefined | null): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {}
}
