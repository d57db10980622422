// Stub of webrtc-polyfill for tests that use only http:// and udp:// trackers.
// Anything that actually tries to open a WebRTC connection (ws:// trackers) fails loudly.
function unavailable (name) {
  return class {
    constructor () {
      throw new Error(`${name}: WebRTC is stubbed out in the Synapse interop tests (HTTP/UDP only)`)
    }
  }
}

export const RTCPeerConnection = unavailable('RTCPeerConnection')
export const RTCSessionDescription = unavailable('RTCSessionDescription')
export const RTCIceCandidate = unavailable('RTCIceCandidate')
export const RTCDataChannel = unavailable('RTCDataChannel')
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
