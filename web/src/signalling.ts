/**
 * The signalling WebSocket of one connection attempt: client messages out; server messages
 * in, validated and each handed to the handler of its `type`; binary messages (media on the
 * WebSocket transport) passed on as they are.
 */

import { encodeClientMessage, parseServerMessage, type ClientMessage, type ServerMessage } from './protocol';

/** `WebSocket.readyState` values (fakes need not define the constants). */
const CONNECTING = 0;
const OPEN = 1;

/** The part of `WebSocket` that signalling uses (a fake in tests). */
export interface SignalSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  binaryType: BinaryType;
  onmessage: ((ev: MessageEvent) => void) | null;
  onclose: ((ev: CloseEvent) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** One handler per server message type, given the message of that type. */
export type ServerHandlers = {
  [K in ServerMessage['type']]: (msg: Extract<ServerMessage, { type: K }>) => void;
};

/** Hands `msg` to the handler of its type. */
export function dispatchServerMessage(handlers: ServerHandlers, msg: ServerMessage): void {
  (handlers[msg.type] as (m: ServerMessage) => void)(msg);
}

export interface SignallingHooks {
  /** What to do with each kind of server message. */
  readonly messages: ServerHandlers;
  /** A binary message: a video or audio frame of the WebSocket transport. */
  binary(data: ArrayBuffer): void;
  /** The socket closed by itself (not through `close()`); `reason` says how. */
  closed(reason: string): void;
}

export class Signalling {
  private closed = false;

  constructor(
    private readonly ws: SignalSocket,
    hooks: SignallingHooks,
  ) {
    ws.binaryType = 'arraybuffer';
    ws.onclose = (ev) => {
      hooks.closed(`signalling connection closed (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`);
    };
    ws.onmessage = (ev) => {
      const data: unknown = ev.data;
      if (typeof data !== 'string') {
        if (data instanceof ArrayBuffer) hooks.binary(data);
        return;
      }
      const parsed = parseServerMessage(data);
      if (!parsed.ok) {
        console.warn(`kelpie: ignoring signalling message: ${parsed.error}`, data.slice(0, 200));
        return;
      }
      dispatchServerMessage(hooks.messages, parsed.value);
    };
  }

  /** Whether messages can be sent now. */
  get open(): boolean {
    return !this.closed && this.ws.readyState === OPEN;
  }

  /** Bytes queued on the socket and not yet sent. */
  get buffered(): number {
    return this.ws.bufferedAmount;
  }

  /** Sends `msg` if the socket is open (dropped otherwise). */
  send(msg: ClientMessage): void {
    if (this.open) this.ws.send(encodeClientMessage(msg));
  }

  /** Closes the socket; no hook is called after this. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const ws = this.ws;
    ws.onmessage = ws.onclose = null;
    if (ws.readyState === CONNECTING || ws.readyState === OPEN) ws.close(1000, 'client reconnecting');
  }
}
