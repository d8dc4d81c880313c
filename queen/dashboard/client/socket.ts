/// <reference lib="dom" />
/** The browser socket: reconnects with backoff, and `onOpen` (re)subscribes each time. */
import type { BrowserToQueen, QueenToBrowser } from "../../../protocol/mod.ts";

export class Live {
  #delay = 500;
  #stopped = false;
  #ws?: WebSocket;

  constructor(
    private onOpen: (live: Live) => void,
    private onFrame: (frame: QueenToBrowser, live: Live) => void,
  ) {
    this.#connect();
  }

  #connect(): void {
    const url = new URL("/ws/browser", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    this.#ws = ws;
    ws.onopen = () => {
      this.#delay = 500;
      this.onOpen(this);
    };
    ws.onmessage = (message) => {
      let frame: QueenToBrowser;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      this.onFrame(frame, this);
    };
    ws.onclose = () => {
      if (this.#stopped) return;
      setTimeout(() => this.#connect(), this.#delay);
      this.#delay = Math.min(this.#delay * 2, 10_000);
    };
  }

  send(frame: BrowserToQueen): void {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(frame));
  }

  stop(): void {
    this.#stopped = true;
    this.#ws?.close();
  }
}
