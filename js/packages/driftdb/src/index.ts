export { Api } from './api.js'
export type { RoomResult, OutgoingMessage } from './api.js'
export { DbConnection, inspectorUrl, socketUrl } from './connection.js'
export type { ConnectOptions, SubscribeHooks, ResetEvent } from './connection.js'
export { HttpConnection } from './http.js'
export { PresenceListener } from './presence.js'
export type { PresenceMessage, WrappedPresenceMessage } from './presence.js'
export { Reducer } from './reducer.js'
export { WebRtcConnections, DEFAULT_CHANNELS } from './webrtc.js'
export type { DataChannelSpec, WebRtcMessage, WebRtcOptions, WebRtcPeerInfo } from './webrtc.js'
export { Compactable, Compactor } from './compactor.js'
export { StateListener } from './state.js'
export { uniqueClientId } from './clientid.js'
export { backoffDelay } from './backoff.js'
export type { BackoffOptions } from './backoff.js'
export { EventListener, SubscriptionManager } from './events.js'
export { encodeCbor, decodeCbor } from './cbor.js'
export * as postcard from './postcard.js'
export { MAX_DATAGRAM_BYTES, certificateHashOptions } from './transport.js'
export type {
  Transport,
  TransportStats,
  CertificateHash,
  WebSocketConstructor,
  WebSocketLike,
  WebTransportConstructor,
  WebTransportLike,
} from './transport.js'
export type {
  Action,
  ConnectionStatus,
  Key,
  MessageFromDb,
  MessageToDb,
  SequenceNumber,
  SequenceValue,
  TransportKind,
  TransportOption,
} from './types.js'
