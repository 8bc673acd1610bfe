import type { DbConnection } from './connection.js'
import { EventListener } from './events.js'
import { PresenceListener, type WrappedPresenceMessage } from './presence.js'
import type { SequenceValue } from './types.js'

/** One data channel opened with every peer. `ordered: false` and `maxRetransmits: 0` make it unreliable. */
export interface DataChannelSpec {
  label: string
  ordered?: boolean
  maxRetransmits?: number
  maxPacketLifeTime?: number
}

/** A reliable ordered channel and an unordered one that never retransmits. */
export const DEFAULT_CHANNELS: DataChannelSpec[] = [
  { label: 'reliable' },
  { label: 'unreliable', ordered: false, maxRetransmits: 0 },
]

/** What the hook and the callbacks see of one peer. */
export interface WebRtcPeerInfo {
  /** The peer's DriftDB client id. */
  id: string
  /** The peer's page session: a new one after each reload. */
  session: string
  /** The RTCPeerConnection's `connectionState`. */
  state: RTCPeerConnectionState
  /** Each data channel's `readyState`, by label. */
  channels: Record<string, RTCDataChannelState>
  /** ICE restarts made to recover this connection. */
  iceRestarts: number
}

/** A message received on a data channel. */
export interface WebRtcMessage {
  from: string
  channel: string
  data: string | ArrayBuffer
}

export interface WebRtcOptions {
  /** The room's connection, which carries presence and signaling. */
  db: DbConnection
  /** This client's id (e.g. `uniqueClientId()`); peers address their signals to it. */
  clientId: string
  /** The key prefix: presence on `${key}/presence`, signals to a client on `${key}/to/${clientId}`. */
  key?: string
  /** The data channels opened with each peer (default `DEFAULT_CHANNELS`). */
  channels?: DataChannelSpec[]
  /** ICE servers and the like (default none: host candidates only, which is enough on one machine or LAN). */
  rtcConfiguration?: RTCConfiguration
  /** The RTCPeerConnection implementation (default the global one). */
  RTCPeerConnection?: typeof RTCPeerConnection
  /** Presence heartbeat (default 1 000 ms); a peer silent for twice that long has left. */
  presenceIntervalMs?: number
  /** A connection that stays `disconnected` this long is restarted (default 2 000 ms). */
  restartAfterMs?: number
}

/**
 * What goes through DriftDB between two peers: a description or an ICE candidate, addressed by page session and by
 * RTCPeerConnection (`toPc` is absent until the sender has heard from the receiver's current one).
 */
interface Signal {
  from: string
  fromSession: string
  toSession: string
  fromPc: string
  toPc?: string
  description?: RTCSessionDescriptionInit
  candidate?: RTCIceCandidateInit
}

interface Presence {
  session: string
}

/** One peer: its RTCPeerConnection, its channels and the perfect-negotiation state. */
interface PeerLink {
  id: string
  session: string
  pc: RTCPeerConnection
  /** Names this RTCPeerConnection in signals, and the peer's one it is paired with (null until heard from). */
  pcId: string
  remotePc: string | null
  channels: Map<string, RTCDataChannel>
  polite: boolean
  makingOffer: boolean
  ignoreOffer: boolean
  iceRestarts: number
  /** The peer's presence expired while this connection worked: it is closed as soon as it stops working. */
  absent: boolean
  restartTimer: ReturnType<typeof setTimeout> | null
  /** Signals are handled one at a time, in arrival order. */
  work: Promise<void>
}

function randomId(): string {
  return Math.random().toString(36).slice(2, 12)
}

/**
 * WebRTC connections with every peer of a DriftDB room, signaled through the room.
 *
 * Peers find each other by presence (`${key}/presence`, a reliable relay carrying each page's session id); signals
 * are relays addressed per peer (`${key}/to/${id}`, reliable, never stored). Negotiation is "perfect negotiation":
 * both sides may offer at once, the polite side (the greater client id) yields. Data channels are pre-negotiated
 * (same ids on both sides), so there is no `ondatachannel` race. Recovery: a connection that fails, or stays
 * disconnected for `restartAfterMs`, is restarted with an ICE restart; a peer that reloads shows up with a new
 * session and gets a fresh RTCPeerConnection; a peer that leaves (its presence expired) is closed, unless its
 * connection still works (it may only have lost the server), in which case it is closed once it stops working. Signals name the RTCPeerConnections at
 * both ends, so that when one side starts over (it lost the server for longer than presence lasts) the other does too,
 * and late signals for a closed connection are ignored.
 */
export class WebRtcConnections {
  /** Fired with every peer's info whenever a connection or channel state changes. */
  readonly peersListener = new EventListener<Record<string, WebRtcPeerInfo>>()
  /** Fired for every message received on a data channel. */
  readonly messageListener = new EventListener<WebRtcMessage>()
  /** This page's session: peers tell a reload apart by it. */
  readonly session = randomId()
  private readonly db: DbConnection
  private readonly clientId: string
  private readonly key: string
  private readonly channelSpecs: DataChannelSpec[]
  private readonly rtcConfiguration: RTCConfiguration
  private readonly Peer: typeof RTCPeerConnection
  private readonly restartAfterMs: number
  private readonly presence: PresenceListener<Presence>
  private readonly links = new Map<string, PeerLink>()
  /**
   * Sessions of peers that reloaded since, and the peers' RTCPeerConnections we replaced ours for: late presence or
   * signals from them are ignored.
   */
  private readonly retired = new Set<string>()
  private destroyed = false

  constructor(options: WebRtcOptions) {
    this.db = options.db
    this.clientId = options.clientId
    this.key = options.key ?? '__webrtc'
    this.channelSpecs = options.channels ?? DEFAULT_CHANNELS
    this.rtcConfiguration = options.rtcConfiguration ?? { iceServers: [] }
    const Peer = options.RTCPeerConnection ?? globalThis.RTCPeerConnection
    if (!Peer) throw new Error('WebRtcConnections needs RTCPeerConnection (pass options.RTCPeerConnection)')
    this.Peer = Peer
    this.restartAfterMs = options.restartAfterMs ?? 2_000
    // The inbox first: a peer that sees our presence may signal at once.
    this.db.subscribe(this.inbox(this.clientId), this.onSignal)
    this.presence = new PresenceListener<Presence>({
      db: this.db,
      clientId: this.clientId,
      key: `${this.key}/presence`,
      initialState: { session: this.session },
      maxPresenceInterval: options.presenceIntervalMs ?? 1_000,
      // Reliable: a presence overtaking the inbox subscription (a datagram) would lose the peer's first offer.
      volatile: false,
      callback: this.onPresence,
      onLeave: (id) => this.onLeave(id),
    })
    this.presence.subscribe()
  }

  /** Every peer's info, by client id. */
  get peers(): Record<string, WebRtcPeerInfo> {
    const out: Record<string, WebRtcPeerInfo> = {}
    for (const link of this.links.values()) out[link.id] = this.info(link)
    return out
  }

  /** The RTCPeerConnection with a peer, for media tracks or stats. */
  connection(peerId: string): RTCPeerConnection | null {
    return this.links.get(peerId)?.pc ?? null
  }

  /** Sends on one peer's channel. Returns false if that channel is not open. */
  send(peerId: string, channel: string, data: string | ArrayBuffer | Uint8Array<ArrayBuffer>): boolean {
    const dc = this.links.get(peerId)?.channels.get(channel)
    if (!dc || dc.readyState !== 'open') return false
    try {
      // The overloads of send() take one type each.
      if (typeof data === 'string') dc.send(data)
      else if (data instanceof ArrayBuffer) dc.send(data)
      else dc.send(data)
      return true
    } catch {
      return false
    }
  }

  /** Sends to every peer whose channel is open. Returns how many it went to. */
  broadcast(channel: string, data: string | ArrayBuffer | Uint8Array<ArrayBuffer>): number {
    let sent = 0
    for (const id of this.links.keys()) if (this.send(id, channel, data)) sent++
    return sent
  }

  /** Closes every connection and stops signaling. */
  destroy(): void {
    this.destroyed = true
    this.presence.destroy()
    this.db.unsubscribe(this.inbox(this.clientId), this.onSignal)
    for (const id of [...this.links.keys()]) this.close(id)
  }

  private inbox(clientId: string): string {
    return `${this.key}/to/${clientId}`
  }

  private info(link: PeerLink): WebRtcPeerInfo {
    const channels: Record<string, RTCDataChannelState> = {}
    for (const [label, dc] of link.channels) channels[label] = dc.readyState
    return {
      id: link.id,
      session: link.session,
      state: link.pc.connectionState,
      channels,
      iceRestarts: link.iceRestarts,
    }
  }

  private changed(): void {
    if (!this.destroyed) this.peersListener.dispatch(this.peers)
  }

  private onPresence = (peers: Record<string, WrappedPresenceMessage<Presence>>): void => {
    for (const [id, p] of Object.entries(peers)) {
      const session = p.value?.session
      if (typeof session !== 'string' || this.retired.has(session)) continue
      const link = this.links.get(id)
      // A new peer, or a peer that reloaded (its old connection is dead).
      if (!link || link.session !== session) this.open(id, session)
      else link.absent = false
    }
  }

  private signal(link: PeerLink, body: Pick<Signal, 'description' | 'candidate'>): void {
    const value: Signal = {
      from: this.clientId,
      fromSession: this.session,
      toSession: link.session,
      fromPc: link.pcId,
      ...(link.remotePc === null ? {} : { toPc: link.remotePc }),
      ...body,
    }
    this.db.send({ type: 'push', action: { type: 'relay' }, key: this.inbox(link.id), value })
  }

  /** Opens (or reopens: the peer reloaded or replaced its connection) the connection with a peer. */
  private open(id: string, session: string): PeerLink {
    const previous = this.links.get(id)
    if (previous && previous.session !== session) this.retired.add(previous.session)
    this.close(id)
    const pc = new this.Peer(this.rtcConfiguration)
    const link: PeerLink = {
      id,
      session,
      pc,
      pcId: randomId(),
      remotePc: null,
      channels: new Map(),
      polite: this.clientId > id,
      makingOffer: false,
      ignoreOffer: false,
      iceRestarts: 0,
      absent: false,
      restartTimer: null,
      work: Promise.resolve(),
    }
    this.links.set(id, link)
    pc.onnegotiationneeded = () => void this.offer(link)
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) this.signal(link, { candidate: candidate.toJSON() })
    }
    pc.onconnectionstatechange = () => this.onConnectionState(link)
    this.channelSpecs.forEach((spec, index) => {
      const { label, ...init } = spec
      // Pre-negotiated with the same id on both sides: no ondatachannel, no race over who creates it.
      const dc = pc.createDataChannel(label, { ...init, negotiated: true, id: index })
      dc.binaryType = 'arraybuffer'
      dc.onopen = () => this.changed()
      dc.onclose = () => {
        if (link.absent) this.close(id)
        else this.changed()
      }
      dc.onmessage = (e: MessageEvent<string | ArrayBuffer>) =>
        this.messageListener.dispatch({ from: id, channel: label, data: e.data })
      link.channels.set(label, dc)
    })
    this.changed()
    return link
  }

  private close(id: string): void {
    const link = this.links.get(id)
    if (!link) return
    this.links.delete(id)
    // The peer's connection paired with this one is dead for us: its late signals must not pair with the next one.
    if (link.remotePc !== null) this.retired.add(link.remotePc)
    if (link.restartTimer !== null) clearTimeout(link.restartTimer)
    for (const dc of link.channels.values()) dc.close()
    link.pc.close()
    this.changed()
  }

  private async offer(link: PeerLink): Promise<void> {
    try {
      link.makingOffer = true
      await link.pc.setLocalDescription()
      if (link.pc.localDescription) this.signal(link, { description: link.pc.localDescription.toJSON() })
    } catch (error) {
      console.warn('driftdb webrtc: offer failed', error)
    } finally {
      link.makingOffer = false
    }
  }

  /** Whether the connection carries data: connected, every channel open. */
  private working(link: PeerLink): boolean {
    return (
      link.pc.connectionState === 'connected' && [...link.channels.values()].every((dc) => dc.readyState === 'open')
    )
  }

  /**
   * The peer's presence expired. It may only have lost the DriftDB server for a while (the peer-to-peer connection
   * does not need it): a working connection is kept until it stops working; any other is closed now.
   */
  private onLeave(id: string): void {
    const link = this.links.get(id)
    if (!link) return
    if (this.working(link)) link.absent = true
    else this.close(id)
  }

  private onConnectionState(link: PeerLink): void {
    const state = link.pc.connectionState
    if (link.restartTimer !== null) clearTimeout(link.restartTimer)
    link.restartTimer = null
    if (link.absent && state !== 'connected') {
      // Gone, and no longer reachable: nobody to restart for.
      this.close(link.id)
      return
    }
    if (state === 'failed') this.restartIce(link)
    else if (state === 'disconnected') {
      // Often transient (a network change): give it a moment before renegotiating.
      link.restartTimer = setTimeout(() => this.restartIce(link), this.restartAfterMs)
    }
    this.changed()
  }

  private restartIce(link: PeerLink): void {
    if (this.links.get(link.id) !== link) return
    link.iceRestarts++
    // Fires negotiationneeded: a new offer with fresh ICE credentials, through perfect negotiation.
    link.pc.restartIce()
    this.changed()
  }

  private onSignal = (event: SequenceValue): void => {
    const s = event.value as Partial<Signal> | null
    if (s === null || typeof s !== 'object' || typeof s.from !== 'string') return
    if (typeof s.fromSession !== 'string' || typeof s.fromPc !== 'string') return
    // For an earlier load of this page, or from a connection of the peer's we have replaced: stale.
    if (s.toSession !== this.session || s.from === this.clientId) return
    if (this.retired.has(s.fromSession) || this.retired.has(s.fromPc)) return
    let link = this.links.get(s.from)
    // For one of our connections that is closed since.
    if (s.toPc !== undefined && s.toPc !== link?.pcId) return
    // The peer's signal may come before its presence does (or announce its reload), or come from a new connection
    // of the peer's (it lost track of us for a while and started over): start over too.
    if (!link || link.session !== s.fromSession || (link.remotePc !== null && link.remotePc !== s.fromPc)) {
      link = this.open(s.from, s.fromSession)
    }
    link.remotePc = s.fromPc
    const target = link
    link.work = link.work.then(() => this.handleSignal(target, s as Signal))
  }

  /** Perfect negotiation (https://w3c.github.io/webrtc-pc/#perfect-negotiation-example). */
  private async handleSignal(link: PeerLink, s: Signal): Promise<void> {
    if (this.links.get(link.id) !== link) return
    const pc = link.pc
    try {
      if (s.description) {
        const collision = s.description.type === 'offer' && (link.makingOffer || pc.signalingState !== 'stable')
        link.ignoreOffer = !link.polite && collision
        if (link.ignoreOffer) return
        await pc.setRemoteDescription(s.description)
        if (s.description.type === 'offer') {
          await pc.setLocalDescription()
          if (pc.localDescription) this.signal(link, { description: pc.localDescription.toJSON() })
        }
      } else if (s.candidate) {
        try {
          await pc.addIceCandidate(s.candidate)
        } catch (error) {
          // Candidates of an offer we ignored are expected to fail.
          if (!link.ignoreOffer) throw error
        }
      }
    } catch (error) {
      console.warn('driftdb webrtc: signaling error', error)
    }
  }
}
