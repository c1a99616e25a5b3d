/** Named errors of the gossip component, each with its context and a remedy. */

export class GossipConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GossipConfigError';
  }
}

export class GossipNotStartedError extends Error {
  constructor(op: string) {
    super(`gossip.${op}() called before start(): start the gossip component first`);
    this.name = 'GossipNotStartedError';
  }
}

export class AntiEntropyError extends Error {
  readonly peer: string;
  constructor(peer: string, message: string, options?: ErrorOptions) {
    super(`anti-entropy with ${peer}: ${message}`, options);
    this.name = 'AntiEntropyError';
    this.peer = peer;
  }
}
