#!/usr/bin/env python3
"""Regenerates the seed corpora under fuzz/seeds/ (they are committed; run this only to change them)."""
import json, os, struct, zlib, hmac, hashlib

HERE = os.path.dirname(os.path.abspath(__file__))

OFFER = "\r\n".join([
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "a=extmap-allow-mixed",
    "a=msid-semantic: WMS",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 45",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Kx7d",
    "a=ice-pwd:9hVm2RbqVjhJp1bPq3bYs7rS",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 6B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08",
    "a=setup:actpass",
    "a=mid:0",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:toffset",
    "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    "a=extmap:3 urn:3gpp:video-orientation",
    "a=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    "a=extmap:12 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
    "a=recvonly",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:96 VP8/90000",
    "a=rtcp-fb:96 goog-remb",
    "a=rtcp-fb:96 transport-cc",
    "a=rtcp-fb:96 ccm fir",
    "a=rtcp-fb:96 nack",
    "a=rtcp-fb:96 nack pli",
    "a=rtpmap:97 rtx/90000",
    "a=fmtp:97 apt=96",
    "a=rtpmap:102 H264/90000",
    "a=rtcp-fb:102 goog-remb",
    "a=rtcp-fb:102 transport-cc",
    "a=rtcp-fb:102 ccm fir",
    "a=rtcp-fb:102 nack",
    "a=rtcp-fb:102 nack pli",
    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    "a=rtpmap:103 rtx/90000",
    "a=fmtp:103 apt=102",
    "a=rtpmap:45 AV1/90000",
    "a=fmtp:45 level-idx=5;profile=0;tier=0",
    "",
])
VP8_ONLY = OFFER.replace(" 102 103 45", "").replace("H264", "H265")
CANDIDATE = "candidate:842163049 1 udp 1677729535 10.9.0.2 40000 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag Kx7d network-cost 999"
CANDIDATES = [
    "candidate:1 1 udp 2130706431 10.9.0.2 40000 typ host",
    "a=candidate:2 1 udp 2130706431 fd00::2 40001 typ host generation 0",
    "candidate:3 1 tcp 1518280447 10.9.0.2 9 typ host tcptype active",
    CANDIDATE,
    "candidate:4 1 udp 2122260223 3f9c1b2e-7b7f-4a2e-9d6f-3c1d2a4b5e6f.local 54321 typ host",
    "candidate:5 1 udp 41885439 203.0.113.7 3478 typ relay raddr 198.51.100.1 rport 5000",
    "",
]

def stun_binding(username=b"Kx7d:ab12", pwd=b"9hVm2RbqVjhJp1bPq3bYs7rS"):
    tid = bytes(range(12))
    attrs = b""
    def attr(t, v):
        return struct.pack("!HH", t, len(v)) + v + b"\0" * (-len(v) % 4)
    attrs += attr(0x0006, username)                      # USERNAME
    attrs += attr(0x0024, struct.pack("!I", 1853824767)) # PRIORITY
    attrs += attr(0x8029, bytes(8))                      # ICE-CONTROLLED
    hdr = lambda extra: struct.pack("!HHI", 0x0001, len(attrs) + extra, 0x2112A442) + tid
    mi = hmac.new(pwd, hdr(24) + attrs, hashlib.sha1).digest()
    attrs += attr(0x0008, mi)                            # MESSAGE-INTEGRITY
    crc = (zlib.crc32(hdr(8) + attrs) ^ 0x5354554E) & 0xffffffff
    attrs += attr(0x8028, struct.pack("!I", crc))        # FINGERPRINT
    return hdr(0) + attrs

def dtls_client_hello():
    body = b"\xfe\xfd" + bytes(32) + b"\x00" + b"\x00" + struct.pack("!H", 4) + b"\xc0\x2b\xc0\x2f" + b"\x01\x00"
    ext = struct.pack("!HH", 0x000e, 5) + b"\x00\x02\x00\x01\x00"          # use_srtp
    ext += struct.pack("!HH", 0x000a, 4) + b"\x00\x02\x00\x17"              # supported_groups
    ext += struct.pack("!HH", 0x0017, 0)                                    # extended_master_secret
    body += struct.pack("!H", len(ext)) + ext
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + b"\x00\x00" + b"\x00\x00\x00" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\xfe\xfd" + b"\x00\x00" + b"\x00" * 6 + struct.pack("!H", len(hs)) + hs

def rtp():
    return bytes([0x80, 102]) + struct.pack("!HII", 1, 90000, 0x1234) + b"\x7c\x85" + bytes(40)

def rtcp_pli():
    return bytes([0x81, 206]) + struct.pack("!HII", 2, 1, 0x1234)

JUNK = bytes((i * 31 + 7) & 0xff for i in range(300))

def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

# protocol_parse: the signalling JSON from docs/protocol.md.
write("protocol_parse", "offer.json", json.dumps({"type": "offer", "sdp": OFFER}))
write("protocol_parse", "candidate.json", json.dumps({"type": "candidate", "candidate": CANDIDATE, "sdpMid": "0"}))
write("protocol_parse", "candidate-nomid.json", json.dumps({"type": "candidate", "candidate": CANDIDATE}))
write("protocol_parse", "keyframe.json", '{"type":"keyframe"}')
write("protocol_parse", "ack.json", '{"type":"ack","pts":1234567}')
write("protocol_parse", "audiodelay.json", '{"type":"audiodelay","ms":64,"video_ms":31}')
write("protocol_parse", "viewerstats.json", '{"type":"viewerstats","fps":60,"rtt_ms":12,"loss_ppm":500,"delay_ms":9}')
write("protocol_parse", "gamepad.json", '{"type":"gamepad","index":1,"buttons":[32767,0,0,0,0,0,12000,0,0,0,0,0,0,0,0,32767,0],"axes":[-32767,0,5,32767]}')
write("protocol_parse", "gamepad-bad.json", '{"type":"gamepad","index":3,"buttons":[],"axes":[-32768]}')
# A server message (rumble) sent back as if it were the browser's: refused as an unknown type.
write("protocol_parse", "rumble-from-client.json", '{"type":"rumble","index":0,"strong":65535,"weak":0,"duration_ms":300}')
write("protocol_parse", "unknown.json", '{"type":"offer","sdp":"v=0","extra":[1,2.5e3,null,true,"\\u00e9"]}')
write("protocol_parse", "oversized.txt", '!{"type":"offer","sdp":"' + "a" * 200 + '"}')
write("protocol_parse", "junk.bin", b'{"type":')

# hub_offer: SDP text.
write("hub_offer", "chromium-offer.sdp", OFFER)
write("hub_offer", "vp8-only.sdp", VP8_ONLY)
write("hub_offer", "minimal.sdp", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n")
write("hub_offer", "junk.bin", JUNK.decode("latin-1"))

# hub_candidate: candidate lines.
write("hub_candidate", "candidates.txt", "\n".join(CANDIDATES))
write("hub_candidate", "one.txt", CANDIDATE)
write("hub_candidate", "junk.txt", "candidate:x 99999999999 udp -1 ::: 0 typ")

# hub_receive: flags byte, then datagrams separated by |KLP|.
SEP = b"|KLP|"
write("hub_receive", "stun-nopeer", bytes([0b00000]) + stun_binding())
write("hub_receive", "stun-peer", bytes([0b01001]) + stun_binding())
write("hub_receive", "dtls-hello-peer", bytes([0b01001]) + dtls_client_hello())
write("hub_receive", "connected-mixed", bytes([0b01011]) + SEP.join([stun_binding(), dtls_client_hello(), rtp(), rtcp_pli(), JUNK]))
write("hub_receive", "connected-stranger", bytes([0b01111]) + SEP.join([dtls_client_hello(), rtp()]))
write("hub_receive", "junk", bytes([0b00001]) + JUNK)
write("hub_receive", "empty", b"")

# auth_tokens: a query, a Cookie header, an Authorization header; a chosen cookie name.
write("auth_tokens", "query.txt", "transport=websocket&token=0123456789abcdef0123456789abcdef&x=")
write("auth_tokens", "cookie.txt", "a=1; kelpie_token_8080=0123456789abcdef;kelpie_token_9090=x; kelpie_token_8080=")
write("auth_tokens", "bearer.txt", "Bearer  0123456789abcdef ")
write("auth_tokens", "named-cookie.txt", "sid|x=1; sid=abc=def; sid")

# http_origin: Origin and Host values as browsers and proxies send them.
write("http_origin", "origin.txt", "http://127.0.0.1:8080")
write("http_origin", "origin-v6.txt", "https://[0:0::1]:443")
write("http_origin", "host.txt", "Desk.Example.com:8443")
write("http_origin", "null.txt", "null")

# clipboard_chunks: limit (u16 LE, ×8 + 1 bytes), then chunks of flags, n, n payload bytes.
# Flags: bit 0 last, bits 1-2 type (text, png, html; 3 = refuse), bit 3 next seq, bit 4 raw
# (not base64), bits 5-7 repeat the payload 4^k times.
def chunk(flags, payload):
    return bytes([flags, len(payload)]) + payload

LIMIT_64K = struct.pack("<H", 8192)
write("clipboard_chunks", "text-in-two", LIMIT_64K + chunk(0b1000, "héllo ".encode()) + chunk(0b0001, "wörld".encode()))
write("clipboard_chunks", "png-then-text", LIMIT_64K + chunk(0b1010, b"\x89PNG") + chunk(0b1001, b"abc"))
write("clipboard_chunks", "past-the-limit", struct.pack("<H", 100) + chunk(0b1000 | (3 << 5), b"x" * 200) + chunk(0b0001, b"y"))
write("clipboard_chunks", "chunk-too-big", LIMIT_64K + chunk(0b1001 | (5 << 5), b"z" * 255))
write("clipboard_chunks", "bad-base64-and-type", LIMIT_64K + chunk(0b11001, b"!!!") + chunk(0b1101, b"hi") + chunk(0b0100, b"hi"))
write("clipboard_chunks", "refused-then-new", LIMIT_64K + chunk(0b1000, b"a") + chunk(0b0110, b"") + chunk(0b0001, b"b") + chunk(0b1001, b"c"))
write("clipboard_chunks", "not-utf8", LIMIT_64K + chunk(0b1001, b"\xff\xfe"))

# https_location: plain HTTP request heads that reach an HTTPS port.
write("https_location", "get.txt", "GET /?token=abc HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nAccept: */*\r\n\r\n")
write("https_location", "subpath-v6.txt", "POST /desk/api HTTP/1.1\r\nhost: [::1]:9443\r\n\r\n")
write("https_location", "absolute.txt", "GET http://evil.example/x HTTP/1.1\r\nHost: Desk.Example.com\r\n")
write("https_location", "partial.txt", "GET / HTTP/1.1\r\nHost: localhost:8")
# file_names: names a browser gives files (plain, Unicode, paths, hidden, controls).
write("file_names", "plain.txt", "report 2026.pdf")
write("file_names", "unicode.txt", "Ünïcødé 名前.txt")
write("file_names", "dotdot.txt", "../../etc/passwd")
write("file_names", "bidi.txt", "invoice\u202efdp.exe")
write("file_names", "long.txt", "é" * 200)
# upload_tickets: the X-Kelpie-Upload-Ticket header (good, uppercase hex, leading zero, huge id).
write("upload_tickets", "good.txt", "3." + "0123456789abcdef" * 4)
write("upload_tickets", "upper.txt", "3." + "0123456789ABCDEF" * 4)
write("upload_tickets", "leading-zero.txt", "03." + "ab" * 32)
write("upload_tickets", "huge-id.txt", "18446744073709551616." + "ab" * 32)
write("upload_tickets", "short.txt", "1.abc")
