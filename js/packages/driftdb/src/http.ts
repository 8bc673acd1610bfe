import { withExtensions } from './extensions.js'
import type { MessageFromDb, MessageToDb } from './types.js'

/**
 * A connection to a DriftDB room over HTTP (one request per message), for environments without WebSockets.
 */
export class HttpConnection {
  constructor(private httpUrl: string) {}

  /** Sends one message; resolves to the server's direct reply (`null` for most pushes). */
  async send(message: MessageToDb): Promise<MessageFromDb> {
    const response = await fetch(withExtensions(this.httpUrl), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(message),
    })
    if (!response.ok) {
      throw new Error(`HTTP error ${response.status}: ${response.statusText}`)
    }
    return (await response.json()) as MessageFromDb
  }
}
