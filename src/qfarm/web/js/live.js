// The controller's change stream, GET /events: one server-sent `change` event per changed
// batch, job or segment, {"kind", "id", "state", "batch_id"} (a removed batch comes as kind
// "batch", state "removed"). Nodes send none.
//
// Changes are gathered for a moment and handed on together, the last state of each object
// winning: a dispatcher tick that moves a hundred segments costs the page one round of
// updates, not a hundred. Each round is handed on with the time its first change came
// (performance.now()), for the page to say how long the round took to be shown. Each
// (re)connection is reported through onOpen, since what changed while the stream was down
// is lost and the page must read its view afresh.

import { streamUrl } from "./api.js";
import { setConnection } from "./dom.js";

const RECONNECT_MS = 2000;
// Short enough that a change is on screen well within a fifth of a second; long enough to
// gather what one dispatcher tick sends.
const GATHER_MS = 40;

export class Live {
  constructor({ onOpen, onChanges }) {
    this.onOpen = onOpen;
    this.onChanges = onChanges;
    this.source = null;
    this.pending = new Map(); // "kind:id" -> the newest change of that object
    this.timer = null;
    this.arrived = 0; // when the first change of the round being gathered came
  }

  connect() {
    if (this.source) this.source.close();
    const source = new EventSource(streamUrl("/events"));
    this.source = source;
    source.onopen = () => {
      setConnection("live", "live");
      // Whatever was gathered from the last connection is covered by the fresh read.
      this.pending.clear();
      this.onOpen();
    };
    source.addEventListener("change", (event) => this.gather(JSON.parse(event.data)));
    source.onerror = () => {
      setConnection("reconnecting to the controller…", "reconnecting");
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (the controller answered with an error): try again ourselves.
        setTimeout(() => {
          if (this.source === source) this.connect();
        }, RECONNECT_MS);
      }
    };
  }

  gather(change) {
    const key = `${change.kind}:${change.id}`;
    this.pending.delete(key); // re-added at the end: changes stay in the order they last moved
    this.pending.set(key, change);
    if (!this.timer) {
      this.arrived = performance.now();
      this.timer = setTimeout(() => this.flush(), GATHER_MS);
    }
  }

  flush() {
    this.timer = null;
    const changes = [...this.pending.values()];
    this.pending.clear();
    if (changes.length) this.onChanges(changes, this.arrived);
  }
}
