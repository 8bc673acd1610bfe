/** A key in a room: any UTF-8 string (`""` included). */
export type Key = string
/** A room-wide sequence number (1 is the first; 0 means "nothing seen"). */
export type SequenceNumber = number

export type Action =
  | {
      type: 'append' | 'replace' | 'relay'
    }
  | {
      type: 'compact'
      seq: SequenceNumber
    }

export interface SequenceValue {
  value: unknown
  seq: SequenceNumber
}

export type MessageFromDb =
  | {
      type: 'push'
      key: Key
      value: unknown
      seq: SequenceNumber
      /** Set on volatile relays. */
      volatile?: boolean
    }
  | {
      type: 'init'
      data: Array<SequenceValue>
      key: Key
      /** The room's epoch (DriftDB servers with resumable subscriptions). */
      epoch?: string
    }
  | {
      type: 'error'
      message: string
    }
  | {
      type: 'stream_size'
      key: Key
      size: number
    }
  | {
      type: 'pong'
      nonce?: number | null
    }

export type MessageToDb =
  | {
      type: 'push'
      action: Action
      value: unknown
      key: Key
      /** A volatile relay: may be dropped for slow readers; sent as a datagram over WebTransport. */
      volatile?: boolean
    }
  | {
      type: 'get'
      key: Key
      /** Replay entries after this seq (default 0); `null` subscribes without an `init`. */
      seq?: SequenceNumber | null
    }
  | {
      type: 'ping'
      nonce?: number
    }
  | {
      type: 'unsubscribe'
      key: Key
    }
  | {
      type: 'goodbye'
    }
  | {
      /** A fresh token for the connection, sent before the current one expires. */
      type: 'auth'
      token: string
    }

/** The transport a connection uses. */
export type TransportKind = 'webtransport' | 'websocket'
/** The transport choice: `auto` tries WebTransport first with a WebSocket fallback. */
export type TransportOption = 'auto' | TransportKind

export type ConnectionStatus =
  | {
      connected: false
    }
  | {
      connected: true
      debugUrl: string
      /** The transport in use. */
      transport: TransportKind
    }
