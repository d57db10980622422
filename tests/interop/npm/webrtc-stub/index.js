// Stand-in for webrtc-polyfill in the Synapse interop tests: a signaling-only fake.
//
// The real package builds node-datachannel, which downloads libdatachannel while installing.
// The tests need no WebRTC transport at all: HTTP and UDP trackers use none, and for ws://
// and wss:// trackers the tests check only the tracker's part, the signaling (offers from
// one client delivered to another, answers delivered back). So RTCPeerConnection here does
// just enough for simple-peer (@thaunknown/simple-peer/lite.js, with trickle: false, as
// bittorrent-tracker's WebSocket client creates it) to make offers and answers:
//
// - createOffer() / createAnswer() resolve to { type, sdp } where sdp is an opaque, unique
//   string (not SDP): "synapse-stub offer <token>" and "synapse-stub answer <token> to
//   <offer token>", so a test can tell which offer an answer answers.
// - setLocalDescription() / setRemoteDescription() move signalingState as the spec does
//   (stable -> have-local-offer -> stable, stable -> have-remote-offer -> stable) and refuse
//   a description that does not fit the state (an answer with no offer out, say), so an
//   answer delivered to the wrong peer shows up as an error in the client.
// - after setLocalDescription(), ICE gathering "completes" at once: iceGatheringState goes
//   gathering -> complete and onicecandidate({ candidate: null }) fires, which is what
//   simple-peer waits for before it emits its 'signal' with trickle off.
// - it never connects: iceConnectionState stays "new" (then "checking" once both
//   descriptions are set), data channels stay "connecting" and refuse send().
//
// MediaStream and MediaStreamTrack still throw: nothing in the tests should touch media.
import { randomBytes } from 'node:crypto'

let counter = 0
const token = () => `${process.pid}-${++counter}-${randomBytes(8).toString('hex')}`

function domError (name, message) {
  const e = new Error(message)
  e.name = name
  return e
}

export class RTCSessionDescription {
  constructor (init = {}) {
    this.type = init.type
    this.sdp = init.sdp === undefined ? '' : String(init.sdp)
  }

  toJSON () {
    return { type: this.type, sdp: this.sdp }
  }
}

export class RTCIceCandidate {
  constructor (init = {}) {
    this.candidate = init.candidate === undefined ? '' : init.candidate
    this.sdpMid = init.sdpMid === undefined ? null : init.sdpMid
    this.sdpMLineIndex = init.sdpMLineIndex === undefined ? null : init.sdpMLineIndex
    this.address = init.address === undefined ? null : init.address
  }

  toJSON () {
    return { candidate: this.candidate, sdpMid: this.sdpMid, sdpMLineIndex: this.sdpMLineIndex }
  }
}

export class RTCDataChannel {
  constructor (label = '', init = {}) {
    this.label = String(label)
    this.ordered = init.ordered !== false
    this.negotiated = !!init.negotiated
    this.id = init.id === undefined ? null : init.id
    this.protocol = init.protocol || ''
    this.readyState = 'connecting' // and it stays so: the fake never connects
    this.bufferedAmount = 0
    this.bufferedAmountLowThreshold = 0
    this.binaryType = 'arraybuffer'
    this.onopen = null
    this.onclose = null
    this.onerror = null
    this.onmessage = null
    this.onbufferedamountlow = null
  }

  send () {
    throw domError('InvalidStateError', 'RTCDataChannel (Synapse test stub): never open, cannot send')
  }

  close () {
    this.readyState = 'closed'
  }
}

export class RTCPeerConnection {
  constructor (config = {}) {
    this._config = config
    this._token = token()
    this._closed = false
    this.localDescription = null
    this.remoteDescription = null
    this.currentLocalDescription = null
    this.currentRemoteDescription = null
    this.pendingLocalDescription = null
    this.pendingRemoteDescription = null
    this.signalingState = 'stable'
    this.iceConnectionState = 'new'
    this.iceGatheringState = 'new'
    this.connectionState = 'new'
    this.canTrickleIceCandidates = null
    this.onicecandidate = null
    this.oniceconnectionstatechange = null
    this.onicegatheringstatechange = null
    this.onconnectionstatechange = null
    this.onsignalingstatechange = null
    this.ondatachannel = null
    this.ontrack = null
    this.onnegotiationneeded = null
    this._channels = []
  }

  getConfiguration () {
    return this._config
  }

  _fire (name, event = {}) {
    const fn = this[name]
    if (!this._closed && typeof fn === 'function') fn.call(this, event)
  }

  _setState (field, value, handler) {
    if (this[field] === value) return
    this[field] = value
    this._fire(handler)
  }

  _check () {
    if (this._closed) throw domError('InvalidStateError', 'RTCPeerConnection (Synapse test stub) is closed')
  }

  createDataChannel (label, init) {
    this._check()
    const ch = new RTCDataChannel(label, init)
    this._channels.push(ch)
    return ch
  }

  async createOffer () {
    this._check()
    return { type: 'offer', sdp: `synapse-stub offer ${this._token}` }
  }

  async createAnswer () {
    this._check()
    if (this.signalingState !== 'have-remote-offer') {
      throw domError('InvalidStateError', `createAnswer in signalingState ${this.signalingState}`)
    }
    const offer = /^synapse-stub offer (\S+)/.exec(this.remoteDescription.sdp)
    return {
      type: 'answer',
      sdp: `synapse-stub answer ${this._token} to ${offer ? offer[1] : 'foreign-offer'}`
    }
  }

  async setLocalDescription (desc) {
    this._check()
    if (!desc || (desc.type !== 'offer' && desc.type !== 'answer')) {
      throw domError('InvalidAccessError', `setLocalDescription: type ${desc && desc.type}`)
    }
    let next
    if (desc.type === 'offer' && this.signalingState === 'stable') next = 'have-local-offer'
    else if (desc.type === 'answer' && this.signalingState === 'have-remote-offer') next = 'stable'
    else throw domError('InvalidStateError', `local ${desc.type} in signalingState ${this.signalingState}`)
    const d = new RTCSessionDescription(desc)
    this.localDescription = d
    if (next === 'stable') {
      this.currentLocalDescription = d
      this.currentRemoteDescription = this.remoteDescription
      this.pendingLocalDescription = this.pendingRemoteDescription = null
    } else {
      this.pendingLocalDescription = d
    }
    this._setState('signalingState', next, 'onsignalingstatechange')
    this._gather()
    this._maybeCheck()
  }

  async setRemoteDescription (desc) {
    this._check()
    if (!desc || (desc.type !== 'offer' && desc.type !== 'answer') || typeof desc.sdp !== 'string') {
      throw domError('InvalidAccessError', `setRemoteDescription: type ${desc && desc.type}`)
    }
    let next
    if (desc.type === 'offer' && this.signalingState === 'stable') next = 'have-remote-offer'
    else if (desc.type === 'answer' && this.signalingState === 'have-local-offer') next = 'stable'
    else throw domError('InvalidStateError', `remote ${desc.type} in signalingState ${this.signalingState}`)
    const d = new RTCSessionDescription(desc)
    this.remoteDescription = d
    if (next === 'stable') {
      this.currentRemoteDescription = d
      this.currentLocalDescription = this.localDescription
      this.pendingLocalDescription = this.pendingRemoteDescription = null
    } else {
      this.pendingRemoteDescription = d
    }
    this._setState('signalingState', next, 'onsignalingstatechange')
    if (desc.type === 'offer' && this._channels.length === 0) {
      // the offerer's data channel "arrives", as in a real connection; it never opens
      const ch = new RTCDataChannel('synapse-stub')
      this._channels.push(ch)
      setTimeout(() => this._fire('ondatachannel', { channel: ch }), 0)
    }
    this._maybeCheck()
  }

  // ICE gathering done at once, after the caller's promise continuation has run
  _gather () {
    if (this.iceGatheringState === 'complete') {
      setTimeout(() => this._fire('onicecandidate', { candidate: null }), 0)
      return
    }
    setTimeout(() => {
      this._setState('iceGatheringState', 'gathering', 'onicegatheringstatechange')
      this._setState('iceGatheringState', 'complete', 'onicegatheringstatechange')
      this._fire('onicecandidate', { candidate: null })
    }, 0)
  }

  _maybeCheck () {
    if (this.localDescription && this.remoteDescription) {
      setTimeout(() => this._setState('iceConnectionState', 'checking', 'oniceconnectionstatechange'), 0)
    }
  }

  async addIceCandidate () {
    this._check()
  }

  async getStats () {
    return new Map()
  }

  getSenders () { return [] }
  getReceivers () { return [] }
  getTransceivers () { return [] }

  close () {
    if (this._closed) return
    this._closed = true // as in the spec, close() fires no events
    this.signalingState = 'closed'
    this.iceConnectionState = 'closed'
    this.connectionState = 'closed'
    for (const ch of this._channels) ch.close()
  }
}

function unavailable (name) {
  return class {
    constructor () {
      throw new Error(`${name}: media is not part of the Synapse interop tests' WebRTC stub (signaling only)`)
    }
  }
}

export const MediaStream = unavailable('MediaStream')
export const MediaStreamTrack = unavailable('MediaStreamTrack')

export default {
  RTCPeerConnection,
  RTCSessionDescription,
  RTCIceCandidate,
  RTCDataChannel,
  MediaStream,
  MediaStreamTrack
}
